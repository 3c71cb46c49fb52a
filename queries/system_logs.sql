-- name: InsertLog :one
-- InsertLog stores one entry and returns it as stored.
INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, user_id, context, trace_id, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING *;

-- name: CopyLogs :copyfrom
-- CopyLogs stores many entries with the COPY protocol (used for batches).
INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, user_id, context, trace_id, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: GetLog :one
-- GetLog returns the entry with the given id.
SELECT * FROM system_logs
WHERE id = $1;

-- name: ListLogs :many
-- ListLogs returns one page of entries matching every non-null filter, newest
-- first, starting strictly after the keyset position (after_ts, after_id).
SELECT * FROM system_logs
WHERE (sqlc.narg('levels')::text[] IS NULL OR level = ANY (sqlc.narg('levels')::text[]))
  AND (sqlc.narg('category')::text IS NULL OR category = sqlc.narg('category')::text)
  AND (sqlc.narg('correlation_id')::text IS NULL OR correlation_id = sqlc.narg('correlation_id')::text)
  AND (sqlc.narg('user_id')::text IS NULL OR user_id = sqlc.narg('user_id')::text)
  AND (sqlc.narg('trace_id')::text IS NULL OR trace_id = sqlc.narg('trace_id')::text)
  AND (sqlc.narg('since')::timestamptz IS NULL OR "timestamp" >= sqlc.narg('since')::timestamptz)
  AND (sqlc.narg('until')::timestamptz IS NULL OR "timestamp" < sqlc.narg('until')::timestamptz)
  AND (sqlc.narg('after_ts')::timestamptz IS NULL
       OR ("timestamp", id) < (sqlc.narg('after_ts')::timestamptz, sqlc.narg('after_id')::uuid))
ORDER BY "timestamp" DESC, id DESC
LIMIT sqlc.arg('row_limit');

-- name: CountLogs :one
-- CountLogs counts every entry matching the same filters as ListLogs, ignoring pagination.
SELECT count(*) FROM system_logs
WHERE (sqlc.narg('levels')::text[] IS NULL OR level = ANY (sqlc.narg('levels')::text[]))
  AND (sqlc.narg('category')::text IS NULL OR category = sqlc.narg('category')::text)
  AND (sqlc.narg('correlation_id')::text IS NULL OR correlation_id = sqlc.narg('correlation_id')::text)
  AND (sqlc.narg('user_id')::text IS NULL OR user_id = sqlc.narg('user_id')::text)
  AND (sqlc.narg('trace_id')::text IS NULL OR trace_id = sqlc.narg('trace_id')::text)
  AND (sqlc.narg('since')::timestamptz IS NULL OR "timestamp" >= sqlc.narg('since')::timestamptz)
  AND (sqlc.narg('until')::timestamptz IS NULL OR "timestamp" < sqlc.narg('until')::timestamptz);
