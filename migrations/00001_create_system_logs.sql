-- +goose Up
-- system_logs is the audit trail: one row per log entry, never updated.
CREATE TABLE system_logs (
    id             uuid        PRIMARY KEY,
    "timestamp"    timestamptz NOT NULL,
    level          text        NOT NULL
        CHECK (level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    category       text        NOT NULL CHECK (char_length(category) BETWEEN 1 AND 64),
    message        text        NOT NULL CHECK (char_length(message) BETWEEN 1 AND 10000),
    correlation_id text        NOT NULL CHECK (char_length(correlation_id) BETWEEN 1 AND 128),
    user_id        text                 CHECK (char_length(user_id) BETWEEN 1 AND 128),
    context        jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object')
);

-- Each index serves one filter combined with the newest-first keyset order
-- ("timestamp" DESC, id DESC), so a deep page costs the same as the first.
CREATE INDEX system_logs_timestamp_idx ON system_logs ("timestamp" DESC, id DESC);
CREATE INDEX system_logs_level_idx ON system_logs (level, "timestamp" DESC, id DESC);
CREATE INDEX system_logs_category_idx ON system_logs (category, "timestamp" DESC, id DESC);
CREATE INDEX system_logs_correlation_id_idx ON system_logs (correlation_id, "timestamp" DESC, id DESC);
CREATE INDEX system_logs_user_id_idx ON system_logs (user_id, "timestamp" DESC, id DESC)
    WHERE user_id IS NOT NULL;

-- +goose Down
DROP TABLE system_logs;
