-- moat-store schema, version 2: enforcement overrides (the graduated response ladder).
--
-- One row per account whose action is pinned: by an operator (`moat accounts allow|block|
-- challenge`, admin API) or by the gateway itself when the detection engine escalated the
-- account to `challenge` or `block` (those persist until an operator lifts them). No row means
-- "the engine decides per request". Times are INTEGER microseconds since the Unix epoch (UTC).

CREATE TABLE account_enforcement (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id),
    -- allow | throttle | degrade | challenge | block
    action     TEXT NOT NULL,
    -- operator | engine
    source     TEXT NOT NULL,
    reason     TEXT,
    set_at     INTEGER NOT NULL
);
