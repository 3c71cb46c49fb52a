-- name: CreateSink :one
-- CreateSink stores a new sink, delivering from after seq cursor.
INSERT INTO sinks (name, url, format, secret, filter_category, filter_min_level, cursor)
VALUES ($1, $2, $3, $4, sqlc.narg('filter_category'), sqlc.narg('filter_min_level'), $5)
RETURNING *;

-- name: ListSinks :many
-- ListSinks returns every sink with the trail's size and how long ago the
-- first entry it has not acknowledged was sealed (0 when it is caught up).
SELECT s.*,
       coalesce((SELECT b.last_seq FROM ledger_blocks b ORDER BY b.first_seq DESC LIMIT 1), 0)::bigint AS tree_size,
       coalesce(extract(epoch FROM now() - (SELECT b.sealed_at FROM ledger_blocks b
           WHERE b.first_seq <= s.cursor + 1 AND b.last_seq >= s.cursor + 1 ORDER BY b.first_seq DESC LIMIT 1)), 0)::float8 AS lag_seconds
FROM sinks s
ORDER BY s.name;

-- name: GetSink :one
-- GetSink returns the sink with the given id.
SELECT * FROM sinks WHERE id = $1;

-- name: SetSinkPaused :execrows
-- SetSinkPaused pauses or resumes the named sink; a resumed one starts with
-- a closed circuit (its failure count cleared).
UPDATE sinks SET paused = $2, failures = CASE WHEN $2 THEN failures ELSE 0 END
WHERE name = $1;

-- name: DeleteSink :execrows
-- DeleteSink removes the named sink.
DELETE FROM sinks WHERE name = $1;

-- name: ReplaySink :execrows
-- ReplaySink moves the named sink's cursor to cursor and starts a new
-- generation, so a deliverer holding the old one cannot move it back.
UPDATE sinks SET cursor = $2, generation = generation + 1, pending_to = NULL, failures = 0
WHERE name = $1;

-- name: SetSinkPending :execrows
-- SetSinkPending records the last seq of the batch about to be sent; it
-- affects no row when the sink's generation has changed.
UPDATE sinks SET pending_to = $3 WHERE id = $1 AND generation = $2;

-- name: AdvanceSink :execrows
-- AdvanceSink moves the cursor after the destination acknowledged up to
-- cursor (or nothing after it matched); it affects no row when the
-- generation has changed (a replay) or the cursor would move back.
UPDATE sinks SET cursor = $3, pending_to = NULL, failures = 0,
       last_delivered_at = CASE WHEN sqlc.arg(delivered)::boolean THEN now() ELSE last_delivered_at END
WHERE id = $1 AND generation = $2 AND cursor <= $3;

-- name: SinkFailed :execrows
-- SinkFailed records a failed delivery attempt.
UPDATE sinks SET failures = failures + 1, last_error = $3, last_error_at = now()
WHERE id = $1 AND generation = $2;
