-- +goose Up
-- actor is the name of the token that wrote the entry, set by the server.
-- Entries written before authentication existed get '(unauthenticated)',
-- which no token name can be.
ALTER TABLE system_logs ADD COLUMN actor text NOT NULL DEFAULT '(unauthenticated)';
ALTER TABLE system_logs ALTER COLUMN actor DROP DEFAULT;

-- +goose Down
ALTER TABLE system_logs DROP COLUMN actor;
