-- name: InsertQueuedLogs :one
-- InsertQueuedLogs is InsertLogs (system_logs.sql) that also queues the
-- stored entries for sealing, as one queue row with their leaf hashes
-- (NULL, or no array: the sequencer hashes the stored entry), in the same
-- statement and so the same transaction; each entry's ledger_tx is that
-- row's id. It returns that id and how many it stored. An empty user_id or trace_id
-- stands for none.
WITH queued AS (
    INSERT INTO ledger_queue (log_ids, log_timestamps, leaf_hashes)
    VALUES (sqlc.arg(ids)::uuid[], sqlc.arg(timestamps)::timestamptz[],
            coalesce(sqlc.narg(leaf_hashes)::bytea[], array_fill(NULL::bytea, ARRAY[cardinality(sqlc.arg(ids)::uuid[])])))
    RETURNING id
), stored AS (
    INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, user_id, context, trace_id, actor, ledger_tx)
    SELECT unnest(sqlc.arg(ids)::uuid[]), unnest(sqlc.arg(timestamps)::timestamptz[]), unnest(sqlc.arg(levels)::text[]),
           unnest(sqlc.arg(categories)::text[]), unnest(sqlc.arg(messages)::text[]), unnest(sqlc.arg(correlation_ids)::text[]),
           NULLIF(unnest(sqlc.arg(user_ids)::text[]), ''), unnest(sqlc.arg(contexts)::jsonb[]), NULLIF(unnest(sqlc.arg(trace_ids)::text[]), ''),
           unnest(sqlc.arg(actors)::text[]), (SELECT id FROM queued)
    RETURNING id
)
SELECT (SELECT id FROM queued)::bigint AS tx, (SELECT count(*) FROM stored)::bigint AS stored;

-- name: QueueLogs :one
-- QueueLogs queues entries for sealing, as one queue row: ids, timestamps
-- and leaf hashes (NULL: the sequencer hashes the stored entry) advance
-- together. It returns the row's id, the entries' ledger_tx; the caller
-- stores them in the same transaction.
INSERT INTO ledger_queue (log_ids, log_timestamps, leaf_hashes)
VALUES (sqlc.arg(ids)::uuid[], sqlc.arg(timestamps)::timestamptz[],
        coalesce(sqlc.narg(leaf_hashes)::bytea[], array_fill(NULL::bytea, ARRAY[cardinality(sqlc.arg(ids)::uuid[])])))
RETURNING id;

-- name: SealsOf :many
-- SealsOf returns the seq and leaf hash of each of ids that is sealed,
-- found in the blocks that sealed their write transactions txs (their
-- ledger_tx): each block is unnested once, and only ids come back.
SELECT u.log_id::uuid AS log_id, (b.first_seq + u.ord - 1)::bigint AS seq, u.leaf_hash::bytea AS leaf_hash
FROM ledger_blocks b
CROSS JOIN LATERAL ROWS FROM (unnest(b.log_ids), unnest(b.leaf_hashes)) WITH ORDINALITY AS u (log_id, leaf_hash, ord)
WHERE b.tx = ANY (sqlc.arg(txs)::bigint[]) AND u.log_id = ANY (sqlc.arg(ids)::uuid[]);

-- name: SealOf :one
-- SealOf returns the seq of the entry id: found through its ledger_tx, in
-- the partition its timestamp names when from and to bound it (a UUIDv7's
-- time), else in any.
SELECT (b.first_seq + array_position(b.log_ids, e.id) - 1)::bigint AS seq
FROM system_logs e
JOIN ledger_blocks b ON b.tx = e.ledger_tx
WHERE e.id = sqlc.arg(id)::uuid AND array_position(b.log_ids, e.id) IS NOT NULL
  AND (sqlc.narg('from')::timestamptz IS NULL OR e."timestamp" >= sqlc.narg('from')::timestamptz)
  AND (sqlc.narg('to')::timestamptz IS NULL OR e."timestamp" < sqlc.narg('to')::timestamptz)
LIMIT 1;

-- name: RetiredSealOf :one
-- RetiredSealOf returns the seq of the entry id if retention dropped it.
SELECT seq FROM ledger_retired_ids WHERE log_id = $1;

-- name: IsQueued :one
-- IsQueued reports whether the entry id waits to be sealed. It reads the
-- whole queue: what the sequencer has not sealed yet, a pass or two.
SELECT EXISTS (SELECT 1 FROM ledger_queue WHERE sqlc.arg(id)::uuid = ANY (log_ids));

-- name: TreeSize :one
-- TreeSize returns the number of sealed entries (the last seq).
SELECT coalesce((SELECT last_seq FROM ledger_blocks ORDER BY first_seq DESC LIMIT 1), 0)::bigint;

-- name: StoredHashes :many
-- StoredHashes returns the tree's stored hashes of the given indexes,
-- each looked up in the block of the leaf seq that created it (seqs
-- advance with indexes), 32 bytes sliced out of the block's hashes; a hash
-- the tree lacks comes back shorter or not at all.
SELECT x.idx::bigint AS idx, x.seq::bigint AS seq, b.last_seq,
       substring(b.hashes FROM ((x.idx - b.first_index) * 32 + 1)::int FOR 32)::bytea AS hash
FROM (SELECT i.idx, (sqlc.arg(seqs)::bigint[])[i.ord] AS seq
      FROM unnest(sqlc.arg(indexes)::bigint[]) WITH ORDINALITY AS i (idx, ord)) x
CROSS JOIN LATERAL (
    SELECT l.first_index, l.last_seq, l.hashes FROM ledger_blocks l
    WHERE l.first_seq <= x.seq ORDER BY l.first_seq DESC LIMIT 1
) b;

-- name: CopyLedgerBlocks :copyfrom
-- CopyLedgerBlocks appends sealed blocks by COPY.
INSERT INTO ledger_blocks (first_seq, last_seq, first_index, tx, log_ids, log_timestamps, leaf_hashes, hashes, sealed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

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

-- name: QueueStats :one
-- QueueStats counts the entries waiting to be sealed and says how long ago
-- the oldest was queued, in seconds (0 when none waits).
SELECT coalesce(sum(cardinality(log_ids)), 0)::bigint AS waiting,
       coalesce(extract(epoch FROM clock_timestamp() - min(queued_at)), 0)::float8 AS oldest_age_seconds
FROM ledger_queue;

-- name: Feed :many
-- Feed returns the sealed entries with seq in (after, after + scan] that
-- match every non-null filter, in seq order, up to row_limit. The blocks
-- of the range are read by their primary key, from the one holding
-- after + 1, and their entries unnested in seq order. A leaf whose entry
-- is no longer in system_logs comes back with a null id (and no filter
-- applies to it), so the reader can tell a missing entry from a filtered
-- one. Each leaf looks up its entry by primary key in the one partition
-- the leaf's timestamp names. The LIMIT keeps the planner from flattening
-- the lookup into a plain join, which it runs as a hash join over a
-- sequential scan of every partition: a page would cost the whole table
-- (docs/performance.md, "The feed's join"). The lookup is a left join from
-- one row so that sqlc types the entry's columns as nullable, which it
-- does not for a lateral subquery's. Every leaf of the range is looked up
-- before the sort: the caller keeps scan near what it needs.
SELECT (b.first_seq + u.ord - 1)::bigint AS seq, u.log_id::uuid AS log_id, u.leaf_hash::bytea AS leaf_hash,
       s.id, s."timestamp", s.level, s.category, s.message, s.correlation_id, s.user_id, s.context, s.trace_id, s.actor
FROM ledger_blocks b
CROSS JOIN LATERAL ROWS FROM (unnest(b.log_ids), unnest(b.log_timestamps), unnest(b.leaf_hashes)) WITH ORDINALITY AS u (log_id, log_timestamp, leaf_hash, ord)
LEFT JOIN LATERAL (
    SELECT e.* FROM (VALUES (1)) AS one LEFT JOIN system_logs e ON e.id = u.log_id AND e."timestamp" = u.log_timestamp LIMIT 1
) s ON true
WHERE b.first_seq >= coalesce((SELECT max(f.first_seq) FROM ledger_blocks f WHERE f.first_seq <= sqlc.arg(after)::bigint + 1), 1)
  AND b.first_seq <= sqlc.arg(after)::bigint + sqlc.arg(scan)::bigint
  AND b.first_seq + u.ord - 1 > sqlc.arg(after)::bigint AND b.first_seq + u.ord - 1 <= sqlc.arg(after)::bigint + sqlc.arg(scan)::bigint
  AND (s.id IS NULL OR (
        (sqlc.narg('levels')::text[] IS NULL OR s.level = ANY (sqlc.narg('levels')::text[]))
    AND (sqlc.narg('category')::text IS NULL OR s.category = sqlc.narg('category')::text)
    AND (sqlc.narg('correlation_id')::text IS NULL OR s.correlation_id = sqlc.narg('correlation_id')::text)
    AND (sqlc.narg('user_id')::text IS NULL OR s.user_id = sqlc.narg('user_id')::text)
    AND (sqlc.narg('trace_id')::text IS NULL OR s.trace_id = sqlc.narg('trace_id')::text)
    AND (sqlc.narg('since')::timestamptz IS NULL OR s."timestamp" >= sqlc.narg('since')::timestamptz)
    AND (sqlc.narg('until')::timestamptz IS NULL OR s."timestamp" < sqlc.narg('until')::timestamptz)))
ORDER BY 1
LIMIT sqlc.arg(row_limit);

-- name: UnsealedLogs :many
-- UnsealedLogs returns entries of system_logs that are neither sealed nor
-- queued: stored behind the API's back. It reads the whole table, and
-- every leaf's id once, into one hash (a row's ledger_tx is not trusted
-- here: a row pointed by SQL at another block is still found, and one
-- whose pointer is wrong but whose leaf exists is not reported).
WITH known AS MATERIALIZED (
    SELECT u.id FROM ledger_blocks b CROSS JOIN LATERAL unnest(b.log_ids) AS u (id)
    UNION ALL
    SELECT u.id FROM ledger_queue q CROSS JOIN LATERAL unnest(q.log_ids) AS u (id)
)
SELECT s.* FROM system_logs s
WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.id = s.id)
ORDER BY s."timestamp", s.id
LIMIT sqlc.arg(row_limit);
