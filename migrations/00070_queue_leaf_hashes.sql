-- +goose Up
-- The writer queues each entry with its leaf hash, computed from what it
-- stores in the same transaction (ledger.WriteLeafHash), so that a seal
-- pass reads the queue alone, without joining every entry back and hashing
-- it again: sealing costs a write a third of what it did (docs/ledger.md,
-- "The queue"). NULL when the writer could not know the stored entry's hash
-- (a context number jsonb rewrites) and for entries queued before this
-- version: the sequencer hashes those from system_logs, as before.
ALTER TABLE ledger_queue ADD COLUMN leaf_hash bytea CHECK (octet_length(leaf_hash) = 32);

-- +goose Down
ALTER TABLE ledger_queue DROP COLUMN leaf_hash;
