-- name: InsertLog :one
-- InsertLog stores one entry and returns it as stored.
INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, user_id, context, trace_id, actor)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING *;

-- name: CopyLogs :copyfrom
-- CopyLogs stores many entries with the COPY protocol (used for batches);
-- ledger_tx is the queue row that queues them (QueueLogs).
INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, user_id, context, trace_id, actor, ledger_tx)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11);

-- name: InsertLogs :execrows
-- InsertLogs stores many entries with one statement, one array element per
-- column per entry (set-returning functions in a select list advance
-- together): the store writes concurrent single writes together with it.
-- An empty user_id or trace_id stands for none; neither can be empty.
INSERT INTO system_logs (id, "timestamp", level, category, message, correlation_id, user_id, context, trace_id, actor)
SELECT unnest(sqlc.arg(ids)::uuid[]), unnest(sqlc.arg(timestamps)::timestamptz[]), unnest(sqlc.arg(levels)::text[]),
       unnest(sqlc.arg(categories)::text[]), unnest(sqlc.arg(messages)::text[]), unnest(sqlc.arg(correlation_ids)::text[]),
       NULLIF(unnest(sqlc.arg(user_ids)::text[]), ''), unnest(sqlc.arg(contexts)::jsonb[]), NULLIF(unnest(sqlc.arg(trace_ids)::text[]), ''),
       unnest(sqlc.arg(actors)::text[]);

-- name: GetLog :one
-- GetLog returns the entry with the given id, reading every partition (one
-- probe of each primary key): the store's fallback for an id whose time
-- is not its entry's.
SELECT * FROM system_logs
WHERE id = $1;

-- name: GetLogNear :one
-- GetLogNear returns the entry with the given id stored in [from, to): the
-- store gives the bounds from the time a UUIDv7 id carries, so the read
-- reaches that one partition.
SELECT * FROM system_logs
WHERE id = sqlc.arg('id') AND "timestamp" >= sqlc.arg('from')::timestamptz AND "timestamp" < sqlc.arg('to')::timestamptz;

-- The three queries that read entries by filter each open with the same
-- "matching" CTE, which states every filter but the level: sqlc has no way
-- to share SQL between queries, so TestQueriesShareTheFilters fails when
-- the copies differ. NOT MATERIALIZED inlines it where it is used, so each
-- use is planned with its filters, as if written out there; a filter whose
-- parameter is null folds away (the pool plans every query for its
-- parameters). system_logs is partitioned by "timestamp": the time bounds
-- prune partitions, and the keyset position is stated a second time as a
-- plain bound on "timestamp" because a row comparison prunes none, so a
-- deep page skips the newer partitions.

-- name: ListLogs :many
-- ListLogs returns one page of entries matching every non-null filter, newest
-- first, starting strictly after the keyset position (after_ts, after_id).
-- The store sends level filters to ListLogsByLevels, which takes the same
-- parameters in the same order.
WITH matching AS NOT MATERIALIZED (
    SELECT * FROM system_logs
    WHERE (sqlc.narg('category')::text IS NULL OR category = sqlc.narg('category')::text)
      AND (sqlc.narg('correlation_id')::text IS NULL OR correlation_id = sqlc.narg('correlation_id')::text)
      AND (sqlc.narg('user_id')::text IS NULL OR user_id = sqlc.narg('user_id')::text)
      AND (sqlc.narg('trace_id')::text IS NULL OR trace_id = sqlc.narg('trace_id')::text)
      AND (sqlc.narg('since')::timestamptz IS NULL OR "timestamp" >= sqlc.narg('since')::timestamptz)
      AND (sqlc.narg('until')::timestamptz IS NULL OR "timestamp" < sqlc.narg('until')::timestamptz)
      AND (sqlc.narg('after_ts')::timestamptz IS NULL
           OR ("timestamp", id) < (sqlc.narg('after_ts')::timestamptz, sqlc.narg('after_id')::uuid))
      AND (sqlc.narg('after_ts')::timestamptz IS NULL OR "timestamp" <= sqlc.narg('after_ts')::timestamptz)
)
SELECT * FROM matching
WHERE (sqlc.narg('levels')::text[] IS NULL OR level = ANY (sqlc.narg('levels')::text[]))
ORDER BY "timestamp" DESC, id DESC
LIMIT sqlc.arg('row_limit');

-- name: ListLogsByLevels :many
-- ListLogsByLevels is ListLogs for entries whose level is one of levels.
-- PostgreSQL 15 cannot read the (level, timestamp, id) index in timestamp
-- order across several levels (level = ANY (...) comes out sorted by level
-- first), so a page would sort every match older than the cursor. Instead
-- each level is its own branch, an index scan already in keyset order and
-- cut at the page size, and the branches are merged (Merge Append); a
-- branch whose level is not in levels folds to false and never runs. One
-- LATERAL branch over unnest(levels) would not do: it is planned once for
-- any level, as if each were as common as the average, so for a rare level
-- it walks the timestamp index past every other level's entries and a deep
-- page slows down; a literal level per branch lets the planner see its
-- share. The store converts ListLogsParams to ListLogsByLevelsParams, which
-- compiles only while the two take the same parameters in the same order.
WITH matching AS NOT MATERIALIZED (
    SELECT * FROM system_logs
    WHERE (sqlc.narg('category')::text IS NULL OR category = sqlc.narg('category')::text)
      AND (sqlc.narg('correlation_id')::text IS NULL OR correlation_id = sqlc.narg('correlation_id')::text)
      AND (sqlc.narg('user_id')::text IS NULL OR user_id = sqlc.narg('user_id')::text)
      AND (sqlc.narg('trace_id')::text IS NULL OR trace_id = sqlc.narg('trace_id')::text)
      AND (sqlc.narg('since')::timestamptz IS NULL OR "timestamp" >= sqlc.narg('since')::timestamptz)
      AND (sqlc.narg('until')::timestamptz IS NULL OR "timestamp" < sqlc.narg('until')::timestamptz)
      AND (sqlc.narg('after_ts')::timestamptz IS NULL
           OR ("timestamp", id) < (sqlc.narg('after_ts')::timestamptz, sqlc.narg('after_id')::uuid))
      AND (sqlc.narg('after_ts')::timestamptz IS NULL OR "timestamp" <= sqlc.narg('after_ts')::timestamptz)
)
SELECT by_level.* FROM (
    (SELECT * FROM matching WHERE level = 'DEBUG' AND 'DEBUG' = ANY (sqlc.arg('levels')::text[])
    ORDER BY "timestamp" DESC, id DESC LIMIT sqlc.arg('row_limit'))
    UNION ALL
    (SELECT * FROM matching WHERE level = 'INFO' AND 'INFO' = ANY (sqlc.arg('levels')::text[])
    ORDER BY "timestamp" DESC, id DESC LIMIT sqlc.arg('row_limit'))
    UNION ALL
    (SELECT * FROM matching WHERE level = 'WARNING' AND 'WARNING' = ANY (sqlc.arg('levels')::text[])
    ORDER BY "timestamp" DESC, id DESC LIMIT sqlc.arg('row_limit'))
    UNION ALL
    (SELECT * FROM matching WHERE level = 'ERROR' AND 'ERROR' = ANY (sqlc.arg('levels')::text[])
    ORDER BY "timestamp" DESC, id DESC LIMIT sqlc.arg('row_limit'))
    UNION ALL
    (SELECT * FROM matching WHERE level = 'CRITICAL' AND 'CRITICAL' = ANY (sqlc.arg('levels')::text[])
    ORDER BY "timestamp" DESC, id DESC LIMIT sqlc.arg('row_limit'))
) AS by_level
ORDER BY by_level."timestamp" DESC, by_level.id DESC
LIMIT sqlc.arg('row_limit');

-- name: CountLogs :one
-- CountLogs counts the entries matching the same filters as ListLogs, from
-- the keyset position when one is given (the store gives none: a total
-- ignores pagination), but stops at row_limit rows: a count reads every
-- match, so its cost is bounded by the limit, not by the table. It takes
-- ListLogs' parameters, so the store converts one to the other.
WITH matching AS NOT MATERIALIZED (
    SELECT * FROM system_logs
    WHERE (sqlc.narg('category')::text IS NULL OR category = sqlc.narg('category')::text)
      AND (sqlc.narg('correlation_id')::text IS NULL OR correlation_id = sqlc.narg('correlation_id')::text)
      AND (sqlc.narg('user_id')::text IS NULL OR user_id = sqlc.narg('user_id')::text)
      AND (sqlc.narg('trace_id')::text IS NULL OR trace_id = sqlc.narg('trace_id')::text)
      AND (sqlc.narg('since')::timestamptz IS NULL OR "timestamp" >= sqlc.narg('since')::timestamptz)
      AND (sqlc.narg('until')::timestamptz IS NULL OR "timestamp" < sqlc.narg('until')::timestamptz)
      AND (sqlc.narg('after_ts')::timestamptz IS NULL
           OR ("timestamp", id) < (sqlc.narg('after_ts')::timestamptz, sqlc.narg('after_id')::uuid))
      AND (sqlc.narg('after_ts')::timestamptz IS NULL OR "timestamp" <= sqlc.narg('after_ts')::timestamptz)
)
SELECT count(*) FROM (
    SELECT 1 FROM matching
    WHERE (sqlc.narg('levels')::text[] IS NULL OR level = ANY (sqlc.narg('levels')::text[]))
    LIMIT sqlc.arg('row_limit')
) AS counted;
