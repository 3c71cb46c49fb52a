-- +goose Up
-- system_logs becomes range-partitioned on "timestamp" (docs/lifecycle.md),
-- so that retention drops whole partitions instead of deleting rows one by
-- one. The table is converted with its rows: the old one is renamed, a
-- partitioned one takes its name, the rows move, the old one goes.
-- Partitions are daily here (one per UTC day that holds rows, and today
-- and the next two days); the server's maintainer creates the rest ahead
-- with its --partition-interval. A DEFAULT partition takes a row whose
-- partition does not exist yet, so no write is ever refused; the
-- maintainer moves such rows out when it creates the partition covering
-- them. The primary key must include the partition key: (id, "timestamp").
DROP STATISTICS system_logs_user_level_stats;
DROP STATISTICS system_logs_category_user_stats;
DROP STATISTICS system_logs_category_level_stats;
DROP INDEX system_logs_timestamp_idx;
DROP INDEX system_logs_level_idx;
DROP INDEX system_logs_category_idx;
DROP INDEX system_logs_correlation_id_idx;
DROP INDEX system_logs_user_id_idx;
DROP INDEX system_logs_trace_id_idx;
DROP INDEX system_logs_category_level_idx;
ALTER TABLE system_logs RENAME TO system_logs_unpartitioned;
ALTER TABLE system_logs_unpartitioned DROP CONSTRAINT system_logs_pkey;

CREATE TABLE system_logs (
    id             uuid        NOT NULL,
    "timestamp"    timestamptz NOT NULL,
    level          text        NOT NULL
        CHECK (level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    category       text        NOT NULL CHECK (char_length(category) BETWEEN 1 AND 64),
    message        text        NOT NULL CHECK (char_length(message) BETWEEN 1 AND 10000),
    correlation_id text        NOT NULL CHECK (char_length(correlation_id) BETWEEN 1 AND 128),
    user_id        text                 CHECK (char_length(user_id) BETWEEN 1 AND 128),
    context        jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    trace_id       text                 CHECK (trace_id ~ '^[0-9a-f]{32}$'),
    actor          text        NOT NULL,
    PRIMARY KEY (id, "timestamp")
) PARTITION BY RANGE ("timestamp");

-- The same indexes as before, created on every partition: each serves one
-- filter with the newest-first keyset order ("timestamp" DESC, id DESC).
CREATE INDEX system_logs_timestamp_idx ON system_logs ("timestamp" DESC, id DESC);
CREATE INDEX system_logs_level_idx ON system_logs (level, "timestamp" DESC, id DESC);
CREATE INDEX system_logs_category_idx ON system_logs (category, "timestamp" DESC, id DESC);
CREATE INDEX system_logs_correlation_id_idx ON system_logs (correlation_id, "timestamp" DESC, id DESC);
CREATE INDEX system_logs_user_id_idx ON system_logs (user_id, "timestamp" DESC, id DESC)
    WHERE user_id IS NOT NULL;
CREATE INDEX system_logs_trace_id_idx ON system_logs (trace_id, "timestamp" DESC, id DESC)
    WHERE trace_id IS NOT NULL;
CREATE INDEX system_logs_category_level_idx ON system_logs (category, level, "timestamp" DESC, id DESC);

-- The statistics of 00013, on the whole tree; the maintainer creates the
-- same on each partition it creates (the planner reads a partition's own).
CREATE STATISTICS system_logs_category_level_stats (mcv, dependencies) ON category, level FROM system_logs;
CREATE STATISTICS system_logs_category_user_stats (mcv, dependencies) ON category, user_id FROM system_logs;
CREATE STATISTICS system_logs_user_level_stats (mcv, dependencies) ON user_id, level FROM system_logs;

CREATE TABLE system_logs_default PARTITION OF system_logs DEFAULT;

-- +goose StatementBegin
DO $$
DECLARE
    day timestamptz;
    part text;
BEGIN
    FOR day IN
        SELECT DISTINCT date_trunc('day', "timestamp", 'UTC') FROM system_logs_unpartitioned
        UNION
        SELECT date_trunc('day', now(), 'UTC') + n * interval '1 day' FROM generate_series(0, 2) AS n
    LOOP
        part := 'system_logs_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD');
        EXECUTE format('CREATE TABLE %I PARTITION OF system_logs FOR VALUES FROM (%L) TO (%L)',
                       part, day, day + interval '1 day');
        EXECUTE format('CREATE STATISTICS %I (mcv, dependencies) ON category, level FROM %I', part || '_cl_stats', part);
        EXECUTE format('CREATE STATISTICS %I (mcv, dependencies) ON category, user_id FROM %I', part || '_cu_stats', part);
        EXECUTE format('CREATE STATISTICS %I (mcv, dependencies) ON user_id, level FROM %I', part || '_ul_stats', part);
    END LOOP;
END
$$;
-- +goose StatementEnd

INSERT INTO system_logs SELECT id, "timestamp", level, category, message, correlation_id, user_id, context, trace_id, actor
FROM system_logs_unpartitioned;

-- The ledger keeps each entry's timestamp next to its id, so that the
-- sequencer and the feed reach an entry's one partition (id and timestamp
-- are its key) instead of probing every partition for the id. A queue row
-- inserted without it (by hand) gets it from system_logs.
ALTER TABLE ledger_queue ADD COLUMN log_timestamp timestamptz;
ALTER TABLE ledger_entries ADD COLUMN log_timestamp timestamptz;
UPDATE ledger_queue q SET log_timestamp = s."timestamp" FROM system_logs_unpartitioned s WHERE s.id = q.log_id;
UPDATE ledger_entries l SET log_timestamp = s."timestamp" FROM system_logs_unpartitioned s WHERE s.id = l.log_id;
DROP TABLE system_logs_unpartitioned;

-- +goose StatementBegin
CREATE FUNCTION ledger_queue_log_timestamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT "timestamp" INTO NEW.log_timestamp FROM system_logs WHERE id = NEW.log_id;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER ledger_queue_log_timestamp
    BEFORE INSERT ON ledger_queue
    FOR EACH ROW WHEN (NEW.log_timestamp IS NULL) EXECUTE FUNCTION ledger_queue_log_timestamp();

-- +goose Down
DROP TRIGGER ledger_queue_log_timestamp ON ledger_queue;
DROP FUNCTION ledger_queue_log_timestamp();
ALTER TABLE ledger_entries DROP COLUMN log_timestamp;
ALTER TABLE ledger_queue DROP COLUMN log_timestamp;
ALTER TABLE system_logs RENAME TO system_logs_partitioned;
CREATE TABLE system_logs (LIKE system_logs_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO system_logs SELECT * FROM system_logs_partitioned;
DROP TABLE system_logs_partitioned;
ALTER TABLE system_logs ADD PRIMARY KEY (id);
CREATE INDEX system_logs_timestamp_idx ON system_logs ("timestamp" DESC, id DESC);
CREATE INDEX system_logs_level_idx ON system_logs (level, "timestamp" DESC, id DESC);
CREATE INDEX system_logs_category_idx ON system_logs (category, "timestamp" DESC, id DESC);
CREATE INDEX system_logs_correlation_id_idx ON system_logs (correlation_id, "timestamp" DESC, id DESC);
CREATE INDEX system_logs_user_id_idx ON system_logs (user_id, "timestamp" DESC, id DESC)
    WHERE user_id IS NOT NULL;
CREATE INDEX system_logs_trace_id_idx ON system_logs (trace_id, "timestamp" DESC, id DESC)
    WHERE trace_id IS NOT NULL;
CREATE INDEX system_logs_category_level_idx ON system_logs (category, level, "timestamp" DESC, id DESC);
CREATE STATISTICS system_logs_category_level_stats (mcv, dependencies) ON category, level FROM system_logs;
CREATE STATISTICS system_logs_category_user_stats (mcv, dependencies) ON category, user_id FROM system_logs;
CREATE STATISTICS system_logs_user_level_stats (mcv, dependencies) ON user_id, level FROM system_logs;
