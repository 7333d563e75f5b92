-- moat-store schema, version 1 (PostgreSQL).
--
-- The same tables and columns as migrations/sqlite/0001_init.sql: times as BIGINT microseconds
-- since the Unix epoch (UTC), hashes as lowercase hex TEXT, lists as JSON TEXT (kept as text:
-- the audit chain hashes the exact bytes), every integer BIGINT, booleans BOOLEAN.

CREATE TABLE accounts (
    id                  TEXT PRIMARY KEY NOT NULL,
    name                TEXT NOT NULL,
    tier                TEXT NOT NULL,
    email_domain        TEXT,
    country             TEXT,
    verified            BOOLEAN NOT NULL DEFAULT FALSE,
    disabled            BOOLEAN NOT NULL DEFAULT FALSE,
    requests_per_minute BIGINT,
    tokens_per_minute   BIGINT,
    tokens_per_day      BIGINT,
    created_at          BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY NOT NULL,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    name           TEXT,
    -- SHA-256 over (key id, 0x00, secret), hex. The secret itself is never stored.
    secret_hash    TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT,
    revoked_at     BIGINT,
    -- JSON array of model names; NULL means every model.
    models         TEXT,
    allow_logprobs BOOLEAN NOT NULL DEFAULT FALSE,
    -- JSON array of CIDR strings; empty array means any address.
    ip_allow       TEXT NOT NULL DEFAULT '[]',
    -- Set when the key was rotated: the id of its successor.
    replaced_by    TEXT
);

CREATE INDEX api_keys_account ON api_keys (account_id);

-- Append-only, hash-chained audit log. One row per exchange (rejected ones included).
CREATE TABLE audit_log (
    seq           BIGINT PRIMARY KEY NOT NULL,
    ts_us         BIGINT NOT NULL,
    account_id    TEXT,
    key_id        TEXT,
    ip            TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    api           TEXT NOT NULL,
    model         TEXT,
    stream        BOOLEAN NOT NULL,
    request_body  TEXT NOT NULL,
    status        BIGINT NOT NULL,
    finish_reason TEXT,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    response_text TEXT,
    latency_ms    BIGINT NOT NULL,
    error         TEXT,
    decision      TEXT,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);

CREATE INDEX audit_log_ts ON audit_log (ts_us, seq);

-- The newest link of the chain, updated in the same transaction as every batch. On PostgreSQL
-- it is also the chain's lock: every batch takes `SELECT … FOR UPDATE` on this row first, so
-- the batches of all replicas append one after another to a single chain. The row exists from
-- the start (genesis: seq 0, zero hash), so there is always a row to lock.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
