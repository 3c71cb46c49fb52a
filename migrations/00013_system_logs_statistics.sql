-- +goose Up
-- The planner multiplies the selectivities of filters it believes
-- independent. In an audit log they are not: a service account writes to
-- one category, and some categories are mostly warnings. Underestimating a
-- combined filter made PostgreSQL sort every match (a bitmap scan) instead
-- of reading the matching index in keyset order, so deep pages slowed
-- down. Multivariate statistics on the pairs list pages filter by together
-- fix the estimates.
CREATE STATISTICS system_logs_category_level_stats (mcv, dependencies) ON category, level FROM system_logs;
CREATE STATISTICS system_logs_category_user_stats (mcv, dependencies) ON category, user_id FROM system_logs;
CREATE STATISTICS system_logs_user_level_stats (mcv, dependencies) ON user_id, level FROM system_logs;

-- +goose Down
DROP STATISTICS system_logs_user_level_stats;
DROP STATISTICS system_logs_category_user_stats;
DROP STATISTICS system_logs_category_level_stats;
