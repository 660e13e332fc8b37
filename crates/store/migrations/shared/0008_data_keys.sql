-- Envelope encryption: stored values are sealed by data keys, each kept here wrapped (sealed)
-- by the master key with 'data-key:' and its id as associated data. One key is current (it
-- seals new values); during a rotation the one before it is retiring (it only opens values
-- not yet re-sealed) until the rotation deletes it. Sealed values name their key's id.
CREATE TABLE data_keys (
    id         TEXT COLLATE BINARY NOT NULL PRIMARY KEY,
    wrapped    BLOB   NOT NULL,
    state      TEXT   NOT NULL CHECK (state IN ('current', 'retiring')),
    created_at BIGINT NOT NULL
);

-- At most one current key, whichever process writes.
CREATE UNIQUE INDEX data_keys_one_current ON data_keys (state) WHERE state = 'current';
