-- +goose Up
-- idempotency_keys remembers each successful write made with an
-- Idempotency-Key, per token, for 24 hours: the hash of the request and the
-- ids it stored (system_logs rows never change, so the ids give back the
-- response). The row is claimed in the same transaction as the write, so two
-- concurrent requests with the same key cannot both write.
CREATE TABLE idempotency_keys (
    actor        text        NOT NULL,
    key          text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash bytea       NOT NULL,
    log_ids      uuid[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (actor, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
