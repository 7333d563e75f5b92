-- moat-store schema, version 4: idempotent audit batches.
--
-- Every batch the audit writer commits gets a random id, recorded here in the same transaction
-- as its rows. A batch retried after an ambiguous failure (committed, but the acknowledgement
-- was lost to a timeout, or the process crashed before truncating its spool) finds its id and
-- is skipped, so no record is written twice. Not part of the hash chain: it only says which
-- seq range each batch took.
CREATE TABLE audit_batches (
    batch_id  TEXT PRIMARY KEY NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    ts_us     INTEGER NOT NULL
);
