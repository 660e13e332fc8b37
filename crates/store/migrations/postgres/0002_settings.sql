-- Store-wide values, e.g. a value sealed with the master key, which lets a start with the
-- wrong key fail at once instead of on the first secret it cannot open.
CREATE TABLE settings (
    name  TEXT  NOT NULL PRIMARY KEY,
    value BYTEA NOT NULL
);
