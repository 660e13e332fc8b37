-- The audit trail: every use of a credential and every change, by whom, with what outcome.
-- Never a secret, a query value, a header or a body. Ids are UUIDv7 (time-ordered), so the
-- primary key serves a tenant's listing in time order, its time filters and the retention
-- sweep; no other index, so that a row costs one B-tree insert (it is written for every call).
-- No foreign key: the trail outlives what it names.
CREATE TABLE audit_events (
    tenant_id TEXT COLLATE BINARY NOT NULL,
    id TEXT COLLATE BINARY NOT NULL,
    at BIGINT NOT NULL,
    principal TEXT NOT NULL,
    action TEXT NOT NULL,
    connection_id TEXT,
    connector_id TEXT,
    target TEXT,
    operation TEXT,
    method TEXT,
    path TEXT,
    outcome TEXT NOT NULL,
    latency_us BIGINT,
    instance TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
