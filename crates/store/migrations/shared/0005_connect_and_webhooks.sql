-- Connect sessions (an app's end user connects an account through a short-lived link) and
-- webhooks (the app learns of every change to a connection): events are written to an outbox
-- in the same transaction as the change that causes them, and fanned out to one delivery per
-- subscribed webhook, which instances claim one at a time.

CREATE TABLE connect_sessions (
    id             TEXT COLLATE BINARY NOT NULL PRIMARY KEY,
    tenant_id      TEXT COLLATE BINARY NOT NULL REFERENCES tenants (id),
    -- The SHA-256 (hex) of the session's token: the token itself is never stored.
    token_hash     TEXT   NOT NULL UNIQUE,
    end_user_id    TEXT   NOT NULL,
    -- How the end user's page names the app that sent the link.
    app_name       TEXT,
    -- A JSON array of the connectors offered; NULL: all of the tenant's.
    connector_ids  TEXT,
    return_url     TEXT,
    created_by     TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    -- The connection it made (its one), and when that connection was connected.
    connection_id  TEXT COLLATE BINARY,
    completed_at   BIGINT
);

-- Where a sign-in's browser goes afterwards, sealed (a connect page's address holds its token).
ALTER TABLE oauth_states ADD COLUMN sealed_return_url BLOB;

CREATE TABLE webhooks (
    id          TEXT COLLATE BINARY NOT NULL PRIMARY KEY,
    tenant_id   TEXT COLLATE BINARY NOT NULL REFERENCES tenants (id),
    url         TEXT   NOT NULL,
    -- ',type,type,' : the events it receives; NULL: all.
    events      TEXT,
    enabled     BIGINT NOT NULL,
    -- Its signing secrets, sealed with the webhook id as associated data: a JSON array of
    -- {secret, until} (a rotated-out secret signs until its `until`).
    secrets     BLOB   NOT NULL,
    created_by  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);

CREATE TABLE webhook_events (
    id          TEXT COLLATE BINARY NOT NULL PRIMARY KEY,
    tenant_id   TEXT COLLATE BINARY NOT NULL REFERENCES tenants (id),
    type        TEXT   NOT NULL,
    -- The payload as it is sent: JSON, never a secret.
    payload     TEXT   NOT NULL,
    -- Deliveries of one key (a connection) go out in id order.
    ordering_key TEXT COLLATE BINARY NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT COLLATE BINARY NOT NULL PRIMARY KEY,
    tenant_id       TEXT COLLATE BINARY NOT NULL,
    webhook_id      TEXT COLLATE BINARY NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        TEXT COLLATE BINARY NOT NULL REFERENCES webhook_events (id),
    ordering_key    TEXT COLLATE BINARY NOT NULL,
    -- 'pending', 'delivered' or 'failed' (given up).
    state           TEXT   NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    last_attempt_at BIGINT,
    -- The instance attempting it now, until when.
    claimed_by      TEXT,
    claimed_until   BIGINT,
    created_at      BIGINT NOT NULL,
    UNIQUE (webhook_id, event_id)
);

-- What the senders ask: the pending deliveries due, the earliest of each key first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, ordering_key, state, event_id);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (tenant_id, webhook_id, id);
