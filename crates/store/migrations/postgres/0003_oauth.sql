-- OAuth 2.0: a connection's tokens (sealed with the connection id and ':tokens' as associated
-- data) and when the access token expires; sign-ins in progress, known by the SHA-256 of their
-- state and used once; and leases that let one process at a time refresh a connection.
ALTER TABLE connections ADD COLUMN tokens BYTEA;
ALTER TABLE connections ADD COLUMN token_expires_at BIGINT;

CREATE TABLE oauth_states (
    state_hash    TEXT   NOT NULL PRIMARY KEY,
    tenant_id     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id),
    connection_id TEXT COLLATE "C" NOT NULL,
    -- The PKCE verifier, sealed with the state hash as associated data.
    verifier      BYTEA  NOT NULL,
    redirect_uri  TEXT   NOT NULL,
    return_url    TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

CREATE TABLE leases (
    name       TEXT   NOT NULL PRIMARY KEY,
    holder     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
