-- name: DeleteExpiredKey :exec
-- DeleteExpiredKey forgets one key when it was claimed before the cutoff.
DELETE FROM idempotency_keys
WHERE actor = $1 AND key = $2 AND created_at < sqlc.arg('before');

-- name: ClaimKey :execrows
-- ClaimKey records a key for a write about to happen; it affects no row when
-- the key is taken, and waits while a concurrent transaction holds it.
INSERT INTO idempotency_keys (actor, key, request_hash, created_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (actor, key) DO NOTHING;

-- name: GetKey :one
-- GetKey returns a claimed key with the request hash and the ids it stored.
SELECT * FROM idempotency_keys
WHERE actor = $1 AND key = $2;

-- name: SetKeyLogs :exec
-- SetKeyLogs records the ids a claimed key's write stored.
UPDATE idempotency_keys SET log_ids = $3
WHERE actor = $1 AND key = $2;

-- name: DeleteExpiredKeys :execrows
-- DeleteExpiredKeys forgets every key claimed before the cutoff.
DELETE FROM idempotency_keys
WHERE created_at < sqlc.arg('before');

-- name: GetLogsByIDs :many
-- GetLogsByIDs returns the entries with the given ids stored at or after
-- since (the key's claim, less a margin, which prunes the partitions), in
-- no particular order.
SELECT * FROM system_logs
WHERE id = ANY (sqlc.arg('ids')::uuid[]) AND "timestamp" >= sqlc.arg('since')::timestamptz;
