-- +goose Up
-- Servers remember the tokens they have verified and forget them all when
-- PostgreSQL notifies them that api_tokens changed, so a revocation takes
-- effect at once on every server, however it was made.
-- +goose StatementBegin
CREATE FUNCTION notify_api_tokens_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('valhalla_api_tokens', TG_OP);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER api_tokens_changed
    AFTER UPDATE OR DELETE OR TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION notify_api_tokens_changed();

-- +goose Down
DROP TRIGGER api_tokens_changed ON api_tokens;
DROP FUNCTION notify_api_tokens_changed();
