-- name: CreateToken :one
-- CreateToken stores a new token's name, public id, secret hash, scopes and
-- limit overrides (NULL for the server's defaults).
INSERT INTO api_tokens (name, public_id, secret_hash, scopes, rate_limit, entry_rate_limit, max_in_flight, read_rate_limit)
VALUES ($1, $2, $3, $4, sqlc.narg('rate_limit'), sqlc.narg('entry_rate_limit'), sqlc.narg('max_in_flight'), sqlc.narg('read_rate_limit'))
RETURNING *;

-- name: CreateFirstToken :execrows
-- CreateFirstToken stores a token only when no token exists at all (revoked
-- ones included); it affects no row otherwise.
INSERT INTO api_tokens (name, public_id, secret_hash, scopes)
SELECT $1, $2, $3, $4
WHERE NOT EXISTS (SELECT 1 FROM api_tokens)
ON CONFLICT DO NOTHING;

-- name: GetActiveToken :one
-- GetActiveToken returns the unrevoked token with the given public id.
SELECT * FROM api_tokens
WHERE public_id = $1 AND revoked_at IS NULL;

-- name: ListTokens :many
-- ListTokens returns every token, revoked ones included, oldest first.
SELECT * FROM api_tokens
ORDER BY created_at, name;

-- name: RevokeToken :execrows
-- RevokeToken marks the named token revoked; it affects no row when there is
-- no such token or it is already revoked.
UPDATE api_tokens SET revoked_at = now()
WHERE name = $1 AND revoked_at IS NULL;
