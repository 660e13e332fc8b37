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
    -- Calls alike (same principal, connection, operation or method + template, outcome) taken
    -- by the writer in one flush are one event of this many calls; latency_us is their mean.
    count BIGINT NOT NULL DEFAULT 1,
    latency_us BIGINT,
    instance TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
