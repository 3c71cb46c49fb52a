-- +goose Up
-- trace_id is the W3C trace id of the request that wrote the entry, next to
-- its correlation_id (the X-Request-ID): two ids, never mixed up. Entries
-- stored before this migration have none.
ALTER TABLE system_logs
    ADD COLUMN trace_id text CHECK (trace_id ~ '^[0-9a-f]{32}$');

-- Serves the trace_id filter with the newest-first keyset order, like the
-- indexes of the other filters.
CREATE INDEX system_logs_trace_id_idx ON system_logs (trace_id, "timestamp" DESC, id DESC)
    WHERE trace_id IS NOT NULL;

-- +goose Down
DROP INDEX system_logs_trace_id_idx;
ALTER TABLE system_logs DROP COLUMN trace_id;
