-- Foundation: encrypted secrets of the embedded secret store.
-- Times are unix microseconds (BIGINT)
-- so that the same statements run on SQLite and PostgreSQL.
CREATE TABLE secrets (
    path       TEXT PRIMARY KEY,
    version    BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
