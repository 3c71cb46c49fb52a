-- name: CreateToken :one
-- CreateToken stores a new token's name, public id, secret hash and scopes.
INSERT INTO api_tokens (name, public_id, secret_hash, scopes)
VALUES ($1, $2, $3, $4)
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
