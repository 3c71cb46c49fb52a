-- +goose Up
-- Per-token overrides of the server's rate and concurrency limits; NULL
-- keeps the server's default (valhalla serve --token-rate and friends).
ALTER TABLE api_tokens
    ADD COLUMN rate_limit       double precision CHECK (rate_limit > 0),
    ADD COLUMN entry_rate_limit double precision CHECK (entry_rate_limit > 0),
    ADD COLUMN max_in_flight    integer          CHECK (max_in_flight > 0);

-- +goose Down
ALTER TABLE api_tokens
    DROP COLUMN rate_limit,
    DROP COLUMN entry_rate_limit,
    DROP COLUMN max_in_flight;
