-- +goose Up
-- The sealed trail (docs/ledger.md). Every entry the API stores is queued
-- in ledger_queue in the transaction that stores it; one sequencer (the
-- server holding the ledger advisory lock) moves queued entries into
-- ledger_entries in commit order, giving each its seq (1, 2, 3, ... with no
-- gap) and its place in the RFC 6962 Merkle tree, and signs a checkpoint of
-- each new tree size. The tree lives here, apart from system_logs, so that
-- rows can later be retired while the tree stays whole; there is no foreign
-- key to system_logs for the same reason.

-- ledger_queue holds the entries stored but not sealed yet. An entry put
-- into system_logs behind the API's back is never queued, so it is never
-- sealed, and valhalla verify names it.
CREATE TABLE ledger_queue (
    log_id    uuid        PRIMARY KEY,
    queued_at timestamptz NOT NULL DEFAULT now()
);

-- ledger_entries is the tree: leaf seq (record seq-1 of the tlog tree) is
-- the entry log_id, and hashes are the tree's stored hashes that appending
-- it created (golang.org/x/mod/sumdb/tlog.StoredHashes: the leaf hash, then
-- the interior hashes it completed, one level up each), 32 bytes each.
CREATE TABLE ledger_entries (
    seq       bigint      PRIMARY KEY CHECK (seq >= 1),
    log_id    uuid        NOT NULL UNIQUE,
    hashes    bytea       NOT NULL CHECK (octet_length(hashes) >= 32 AND octet_length(hashes) % 32 = 0),
    sealed_at timestamptz NOT NULL
);

-- ledger_checkpoints keeps every signed checkpoint (a C2SP signed note of
-- the tree size and root hash), so a proof can be served against any size
-- that was ever signed.
CREATE TABLE ledger_checkpoints (
    tree_size bigint      PRIMARY KEY CHECK (tree_size >= 0),
    root      bytea       NOT NULL CHECK (octet_length(root) = 32),
    note      text        NOT NULL,
    signed_at timestamptz NOT NULL
);

-- Entries stored before the ledger existed are sealed first, in
-- ("timestamp", id) order: they are queued by this one transaction, and the
-- sequencer breaks ties within a transaction by ("timestamp", id).
INSERT INTO ledger_queue (log_id, queued_at)
SELECT id, "timestamp" FROM system_logs;

-- +goose Down
DROP TABLE ledger_checkpoints;
DROP TABLE ledger_entries;
DROP TABLE ledger_queue;
