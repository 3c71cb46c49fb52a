-- +goose Up
-- A per-token override of the server's read rate: the bytes of listing and
-- feed pages per second (valhalla serve --token-read-rate); NULL keeps the
-- server's default.
ALTER TABLE api_tokens
    ADD COLUMN read_rate_limit double precision CHECK (read_rate_limit > 0);

-- +goose Down
ALTER TABLE api_tokens
    DROP COLUMN read_rate_limit;
