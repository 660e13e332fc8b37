-- The access model: API keys with a role (a user key acts as one end user and may be narrowed
-- to some connections; a revoked key stays, as history), connections owned by an end user and
-- shared with others, the people of a tenant, and who made each write ('key:<id>',
-- 'member:<id>' or 'operator'). Keys made before roles existed were their tenant's only kind:
-- they are admin keys.

ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'author', 'user'));
ALTER TABLE api_keys ADD COLUMN end_user_id TEXT;
-- A JSON array of connection ids.
ALTER TABLE api_keys ADD COLUMN connection_ids TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN created_by TEXT;
ALTER TABLE api_keys ADD COLUMN revoked_at BIGINT;

ALTER TABLE connectors ADD COLUMN created_by TEXT;
ALTER TABLE connectors ADD COLUMN updated_by TEXT;

-- The end user who owns a connection; NULL for a connection of the tenant itself.
ALTER TABLE connections ADD COLUMN end_user_id TEXT;
ALTER TABLE connections ADD COLUMN updated_by TEXT;
CREATE INDEX connections_owner ON connections (tenant_id, end_user_id, id);

ALTER TABLE oauth_states ADD COLUMN started_by TEXT;

CREATE TABLE connection_shares (
    tenant_id     TEXT COLLATE BINARY NOT NULL REFERENCES tenants (id),
    connection_id TEXT COLLATE BINARY NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    end_user_id   TEXT COLLATE BINARY NOT NULL,
    permission    TEXT   NOT NULL CHECK (permission IN ('use', 'edit')),
    created_by    TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (connection_id, end_user_id)
);

-- What a user's listing asks: the connections shared with an end user.
CREATE INDEX connection_shares_end_user ON connection_shares (tenant_id, end_user_id, connection_id);

CREATE TABLE members (
    id         TEXT COLLATE BINARY NOT NULL PRIMARY KEY,
    tenant_id  TEXT COLLATE BINARY NOT NULL REFERENCES tenants (id),
    -- Lower-cased: one person, however they type it.
    email      TEXT   NOT NULL,
    role       TEXT   NOT NULL CHECK (role IN ('admin', 'author', 'user')),
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, email)
);

-- A person signing in is looked up by address across tenants.
CREATE INDEX members_email ON members (email);
