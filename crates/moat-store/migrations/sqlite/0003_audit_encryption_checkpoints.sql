-- moat-store schema, version 3: encryption at rest of audit bodies, and signed checkpoints.
--
-- Rows written from this version on use chain format 2 (`hash_v = 2`): the hash covers salted
-- SHA-256 digests of the request body and response text instead of the texts themselves, so the
-- chain verifies without the encryption key and an evidence pack can disclose some bodies and
-- only the digests of others. Rows written before keep `hash_v = 1` and verify as before.
-- Encrypted rows keep `request_body = ''` and `response_text = NULL`; both texts live in
-- `body_ct` (XChaCha20-Poly1305 under key `enc_key_id`, nonce `enc_nonce`).
ALTER TABLE audit_log ADD COLUMN hash_v          INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN body_salt       TEXT;
ALTER TABLE audit_log ADD COLUMN request_digest  TEXT;
ALTER TABLE audit_log ADD COLUMN response_digest TEXT;
ALTER TABLE audit_log ADD COLUMN enc_key_id      TEXT;
ALTER TABLE audit_log ADD COLUMN enc_nonce       BLOB;
ALTER TABLE audit_log ADD COLUMN body_ct         BLOB;

-- The log's identity, created once, named in every checkpoint.
CREATE TABLE audit_log_id (
    id     INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    log_id TEXT NOT NULL
);

-- Signed checkpoints (Ed25519 over the chain head), in the spirit of CT signed tree heads.
CREATE TABLE audit_checkpoints (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    log_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    head_hash  TEXT NOT NULL,
    ts_us      INTEGER NOT NULL,
    public_key TEXT NOT NULL,
    signature  TEXT NOT NULL
);
