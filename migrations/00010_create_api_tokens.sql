-- +goose Up
-- api_tokens holds the bearer tokens. A token reads vhl_<public_id>_<secret>:
-- the public id finds the row, and only the SHA-256 of the secret is stored.
-- Names are never reused, revoked tokens included, so system_logs.actor
-- always names one token.
CREATE TABLE api_tokens (
    name        text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    public_id   text        NOT NULL UNIQUE CHECK (public_id ~ '^[A-Za-z0-9]{8,32}$'),
    secret_hash bytea       NOT NULL CHECK (octet_length(secret_hash) = 32),
    scopes      text[]      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- +goose Down
DROP TABLE api_tokens;
