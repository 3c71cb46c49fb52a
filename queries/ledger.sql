-- name: InsertQueuedLogs :one
-- InsertQueuedLogs is InsertLogs (system_logs.sql) that also queues the
-- stored entries for sealing, as one queue row with their leaf hashes
-- (NULL, or no array: the sequencer hashes the stored entry), in the same statement and
-- so the same transaction, and returns how many it stored. An empty
-- user_id or trace_id stands for none.
WITH stored AS (
    INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, user_id, context, trace_id, actor)
    SELECT unnest(sqlc.arg(ids)::uuid[]), unnest(sqlc.arg(timestamps)::timestamptz[]), unnest(sqlc.arg(levels)::text[]),
           unnest(sqlc.arg(categories)::text[]), unnest(sqlc.arg(messages)::text[]), unnest(sqlc.arg(correlation_ids)::text[]),
           NULLIF(unnest(sqlc.arg(user_ids)::text[]), ''), unnest(sqlc.arg(contexts)::jsonb[]), NULLIF(unnest(sqlc.arg(trace_ids)::text[]), ''),
           unnest(sqlc.arg(actors)::text[])
    RETURNING id
), queued AS (
    INSERT INTO ledger_queue (log_ids, log_timestamps, leaf_hashes)
    VALUES (sqlc.arg(ids)::uuid[], sqlc.arg(timestamps)::timestamptz[],
            coalesce(sqlc.narg(leaf_hashes)::bytea[], array_fill(NULL::bytea, ARRAY[cardinality(sqlc.arg(ids)::uuid[])])))
)
SELECT count(*) FROM stored;

-- name: QueueLogs :exec
-- QueueLogs queues the entries stored in the current transaction for
-- sealing, as one queue row: ids, timestamps and leaf hashes (NULL: the
-- sequencer hashes the stored entry) advance together.
INSERT INTO ledger_queue (log_ids, log_timestamps, leaf_hashes)
VALUES (sqlc.arg(ids)::uuid[], sqlc.arg(timestamps)::timestamptz[],
        coalesce(sqlc.narg(leaf_hashes)::bytea[], array_fill(NULL::bytea, ARRAY[cardinality(sqlc.arg(ids)::uuid[])])));

-- name: SealsOf :many
-- SealsOf returns the seq and leaf hash of each of ids that is sealed.
SELECT log_id, seq, substring(hashes FROM 1 FOR 32)::bytea AS leaf_hash
FROM ledger_entries
WHERE log_id = ANY (sqlc.arg(ids)::uuid[]);

-- name: IsQueued :one
-- IsQueued reports whether the entry id waits to be sealed. It reads the
-- whole queue: what the sequencer has not sealed yet, a pass or two.
SELECT EXISTS (SELECT 1 FROM ledger_queue WHERE sqlc.arg(id)::uuid = ANY (log_ids));

-- name: TreeSize :one
-- TreeSize returns the number of sealed entries (the last seq).
SELECT coalesce(max(seq), 0)::bigint FROM ledger_entries;

-- name: StoredHashRows :many
-- StoredHashRows returns the stored hashes of the leaves seqs.
SELECT seq, hashes FROM ledger_entries
WHERE seq = ANY (sqlc.arg(seqs)::bigint[]);

-- name: CopyLedgerEntries :copyfrom
-- CopyLedgerEntries appends sealed leaves by COPY; log_timestamp is the
-- entry's timestamp (its partition).
INSERT INTO ledger_entries (seq, log_id, hashes, log_timestamp, sealed_at) VALUES ($1, $2, $3, $4, $5);

-- name: DequeueLogs :exec
-- DequeueLogs removes the queue rows (transactions) ids, sealed.
DELETE FROM ledger_queue WHERE id = ANY (sqlc.arg(ids)::bigint[]);

-- name: InsertCheckpoint :exec
-- InsertCheckpoint stores a signed checkpoint.
INSERT INTO ledger_checkpoints (tree_size, root, note, signed_at)
VALUES ($1, $2, $3, $4);

-- name: LatestCheckpoint :one
-- LatestCheckpoint returns the checkpoint of the largest tree.
SELECT * FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1;

-- name: CheckpointOfSize :one
-- CheckpointOfSize returns the checkpoint signed for tree_size.
SELECT * FROM ledger_checkpoints WHERE tree_size = $1;

-- name: SealOf :one
-- SealOf returns the seq of the entry log_id.
SELECT seq FROM ledger_entries WHERE log_id = $1;

-- name: QueueStats :one
-- QueueStats counts the entries waiting to be sealed and says how long ago
-- the oldest was queued, in seconds (0 when none waits).
SELECT coalesce(sum(cardinality(log_ids)), 0)::bigint AS waiting,
       coalesce(extract(epoch FROM clock_timestamp() - min(queued_at)), 0)::float8 AS oldest_age_seconds
FROM ledger_queue;

-- name: Feed :many
-- Feed returns the sealed entries with seq in (after, after + scan] that
-- match every non-null filter, in seq order, up to row_limit, together with
-- the tree size in the same snapshot. A leaf whose entry is no longer in
-- system_logs comes back with a null id (and no filter applies to it), so
-- the reader can tell a missing entry from a filtered one. Each leaf looks
-- up its entry by primary key in the one partition the leaf's timestamp
-- names. The LIMIT keeps the planner from flattening the lookup into a
-- plain join, which it runs as a hash join over a sequential scan of every
-- partition: a page would cost the whole table (docs/performance.md, "The
-- feed's join"). The lookup is a left join from one row so that sqlc types
-- the entry's columns as nullable, which it does not for a lateral
-- subquery's.
SELECT l.seq, l.log_id, substring(l.hashes FROM 1 FOR 32)::bytea AS leaf_hash,
       s.id, s."timestamp", s.level, s.category, s.message, s.correlation_id, s.user_id, s.context, s.trace_id, s.actor
FROM ledger_entries l
LEFT JOIN LATERAL (
    SELECT e.* FROM (VALUES (1)) AS one LEFT JOIN system_logs e ON e.id = l.log_id AND e."timestamp" = l.log_timestamp LIMIT 1
) s ON true
WHERE l.seq > sqlc.arg(after)::bigint AND l.seq <= sqlc.arg(after)::bigint + sqlc.arg(scan)::bigint
  AND (s.id IS NULL OR (
        (sqlc.narg('levels')::text[] IS NULL OR s.level = ANY (sqlc.narg('levels')::text[]))
    AND (sqlc.narg('category')::text IS NULL OR s.category = sqlc.narg('category')::text)
    AND (sqlc.narg('correlation_id')::text IS NULL OR s.correlation_id = sqlc.narg('correlation_id')::text)
    AND (sqlc.narg('user_id')::text IS NULL OR s.user_id = sqlc.narg('user_id')::text)
    AND (sqlc.narg('trace_id')::text IS NULL OR s.trace_id = sqlc.narg('trace_id')::text)
    AND (sqlc.narg('since')::timestamptz IS NULL OR s."timestamp" >= sqlc.narg('since')::timestamptz)
    AND (sqlc.narg('until')::timestamptz IS NULL OR s."timestamp" < sqlc.narg('until')::timestamptz)))
ORDER BY l.seq
LIMIT sqlc.arg(row_limit);

-- name: UnsealedLogs :many
-- UnsealedLogs returns entries of system_logs that are neither sealed nor
-- queued: stored behind the API's back. It reads the whole table.
SELECT s.* FROM system_logs s
WHERE NOT EXISTS (SELECT 1 FROM ledger_entries l WHERE l.log_id = s.id)
  AND s.id NOT IN (SELECT unnest(q.log_ids) FROM ledger_queue q)
ORDER BY s."timestamp", s.id
LIMIT sqlc.arg(row_limit);
