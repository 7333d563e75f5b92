-- moat-store schema, version 4 (PostgreSQL): idempotent audit batches, as
-- migrations/sqlite/0004_audit_batches.sql.
CREATE TABLE audit_batches (
    batch_id  TEXT PRIMARY KEY NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq  BIGINT NOT NULL,
    ts_us     BIGINT NOT NULL
);
