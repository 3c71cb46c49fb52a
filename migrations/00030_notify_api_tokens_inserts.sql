-- +goose Up
-- Servers also remember the public ids no token has, so that guesses cost
-- no query; a new token must make them forget those, so creating one
-- notifies too.
CREATE TRIGGER api_tokens_inserted
    AFTER INSERT ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION notify_api_tokens_changed();

-- +goose Down
DROP TRIGGER api_tokens_inserted ON api_tokens;
