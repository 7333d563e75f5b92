-- moat-store schema, version 2 (PostgreSQL): enforcement overrides, as
-- migrations/sqlite/0002_enforcement.sql.

CREATE TABLE account_enforcement (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id),
    -- allow | throttle | degrade | challenge | block
    action     TEXT NOT NULL,
    -- operator | engine
    source     TEXT NOT NULL,
    reason     TEXT,
    set_at     BIGINT NOT NULL
);
