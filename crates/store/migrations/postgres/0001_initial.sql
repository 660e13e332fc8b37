-- Portico's schema, PostgreSQL flavour: a mechanical translation of migrations/sqlite with the
-- same numbering and names. BLOB → BYTEA; TEXT and BIGINT as written. One addition: every id
-- column is COLLATE "C", the byte order that SQLite's default BINARY collation gives, so that
-- `ORDER BY id` and the pagination cursor (`id > $n`) do not depend on the server's locale.
-- Ids are UUID v7 text (sortable by creation, and the pagination cursor); times are
-- milliseconds since the Unix epoch; JSON is text.
-- Connectors and connections always carry their tenant, and every query filters on it.

CREATE TABLE tenants (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- Only the SHA-256 (hex) of a key is kept.
CREATE TABLE api_keys (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    key_hash   TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE connectors (
    id                  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id           TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    -- portico_model::Connector as JSON.
    definition          TEXT   NOT NULL,
    -- Vec<portico_model::Diagnostic> as JSON.
    warnings            TEXT   NOT NULL,
    oauth_client_id     TEXT,
    -- Sealed with the connector id as associated data.
    oauth_client_secret BYTEA,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    -- The target of the connections' (tenant, connector) foreign key, and the tenant index
    -- that lists use: WHERE tenant_id = $1 AND id > $2 ORDER BY id.
    UNIQUE (tenant_id, id)
);

CREATE TABLE connections (
    id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    connector_id   TEXT COLLATE "C" NOT NULL,
    -- The id of the API key that created it. No foreign key: a revoked key leaves history.
    created_by_key TEXT   NOT NULL,
    display_name   TEXT   NOT NULL,
    parameter_set  TEXT,
    status         TEXT   NOT NULL CHECK (status IN ('pending', 'connected', 'needs_reauth', 'error')),
    status_reason  TEXT,
    -- The non-secret parameter values: a JSON object.
    parameters     TEXT   NOT NULL,
    -- Sealed with the connection id as associated data.
    secrets        BYTEA,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    -- A connection's connector belongs to the same tenant.
    FOREIGN KEY (tenant_id, connector_id) REFERENCES connectors (tenant_id, id)
);

CREATE INDEX connections_tenant ON connections (tenant_id, id);
CREATE INDEX connections_connector ON connections (tenant_id, connector_id, id);
