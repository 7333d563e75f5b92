-- moat-store schema, version 1.
--
-- Kept deliberately portable (a PostgreSQL backend is planned): plain TEXT and INTEGER
-- columns, times as INTEGER microseconds since the Unix epoch (UTC), hashes as lowercase
-- hex TEXT, lists as JSON TEXT, booleans as INTEGER 0/1.

CREATE TABLE accounts (
    id                  TEXT PRIMARY KEY NOT NULL,
    name                TEXT NOT NULL,
    tier                TEXT NOT NULL,
    email_domain        TEXT,
    country             TEXT,
    verified            INTEGER NOT NULL DEFAULT 0,
    disabled            INTEGER NOT NULL DEFAULT 0,
    requests_per_minute INTEGER,
    tokens_per_minute   INTEGER,
    tokens_per_day      INTEGER,
    created_at          INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY NOT NULL,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    name           TEXT,
    -- SHA-256 over (key id, 0x00, secret), hex. The secret itself is never stored.
    secret_hash    TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    revoked_at     INTEGER,
    -- JSON array of model names; NULL means every model.
    models         TEXT,
    allow_logprobs INTEGER NOT NULL DEFAULT 0,
    -- JSON array of CIDR strings; empty array means any address.
    ip_allow       TEXT NOT NULL DEFAULT '[]',
    -- Set when the key was rotated: the id of its successor.
    replaced_by    TEXT
);

CREATE INDEX api_keys_account ON api_keys (account_id);

-- Append-only, hash-chained audit log. One row per exchange (rejected ones included).
CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY NOT NULL,
    ts_us         INTEGER NOT NULL,
    account_id    TEXT,
    key_id        TEXT,
    ip            TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    api           TEXT NOT NULL,
    model         TEXT,
    stream        INTEGER NOT NULL,
    request_body  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    finish_reason TEXT,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    response_text TEXT,
    latency_ms    INTEGER NOT NULL,
    error         TEXT,
    decision      TEXT,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);

CREATE INDEX audit_log_ts ON audit_log (ts_us, seq);

-- The newest link of the chain, updated in the same transaction as every batch, so that
-- removing the newest rows is detected too (as long as this row is not rewritten as well).
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
