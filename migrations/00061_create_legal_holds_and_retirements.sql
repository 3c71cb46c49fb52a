-- +goose Up
-- legal_holds keeps entries through retention (docs/lifecycle.md): before
-- a partition is dropped, the entries an active hold matches (every set
-- criterion) move to a partition of their own for the same time range,
-- which the listing, the get and the feed read as any other. A released
-- hold stops keeping them; they then follow the policy again. Names are
-- never reused, released holds included, so a name always means one hold.
CREATE TABLE legal_holds (
    name        text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    reason      text        NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 1000),
    category    text                 CHECK (char_length(category) BETWEEN 1 AND 64),
    user_id     text                 CHECK (char_length(user_id) BETWEEN 1 AND 128),
    since       timestamptz,
    until       timestamptz CHECK (until > since),
    created_at  timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz
);

-- ledger_retirements records what retention removed from system_logs while
-- the tree kept its hashes: the partition, its time range, the seqs of the
-- sealed entries it retired (as "a-b,c-d" ranges), how many, how many
-- holds kept, the policy and the time, in a note signed with the ledger's
-- key, so valhalla verify tells a retired entry from a deleted one.
CREATE TABLE ledger_retirements (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partition   text        NOT NULL,
    range_from  timestamptz NOT NULL,
    range_to    timestamptz NOT NULL,
    policy      text        NOT NULL,
    seq_ranges  text        NOT NULL,
    retired     bigint      NOT NULL CHECK (retired >= 0),
    held        bigint      NOT NULL CHECK (held >= 0),
    retired_at  timestamptz NOT NULL,
    note        text        NOT NULL
);

-- +goose Down
DROP TABLE ledger_retirements;
DROP TABLE legal_holds;
