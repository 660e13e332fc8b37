-- A key's own rate limit of calls through connections, in requests per second (and as many at
-- once); NULL: the server's default for keys, if any.
ALTER TABLE api_keys ADD COLUMN rate_limit BIGINT;
