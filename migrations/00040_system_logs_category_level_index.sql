-- +goose NO TRANSACTION
-- +goose Up
-- Serves a category filter with a level filter (min_level, level) in the
-- newest-first keyset order: each level's branch of ListLogsByLevels (and
-- of its count) reads exactly its category's entries at that level. With
-- only the category and the level indexes, a filter that matches little or
-- nothing (a category whose entries are all below min_level) walked every
-- entry of the category or of the level, filtering each: 3.4 s on 2M rows,
-- cut by the read timeout; with this index 8 ms. Built concurrently, so an
-- upgrade on a large table does not stop writes; a build that failed half
-- way leaves an invalid index, dropped first when the migration is retried.
DROP INDEX CONCURRENTLY IF EXISTS system_logs_category_level_idx;
CREATE INDEX CONCURRENTLY system_logs_category_level_idx
    ON system_logs (category, level, "timestamp" DESC, id DESC);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS system_logs_category_level_idx;
