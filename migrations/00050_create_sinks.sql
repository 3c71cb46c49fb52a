-- +goose Up
-- Sinks: destinations the trail is pushed to (docs/delivery.md). One
-- server at a time delivers each sink (the holder of its advisory lock);
-- cursor is the last seq the destination acknowledged with a 2xx, so a
-- server that takes over resumes right after it. generation changes with
-- every replay, so a deliverer that read the old cursor cannot move the
-- new one. pending_to is the last seq of the batch being sent, so that a
-- server that takes over re-sends the same batch (same webhook-id).
CREATE TABLE sinks (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              text        NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    url               text        NOT NULL CHECK (url ~ '^https?://'),
    format            text        NOT NULL CHECK (format IN ('webhook', 'splunk-hec')),
    secret            text        NOT NULL,
    filter_category   text,
    filter_min_level  text        CHECK (filter_min_level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    paused            boolean     NOT NULL DEFAULT false,
    cursor            bigint      NOT NULL DEFAULT 0 CHECK (cursor >= 0),
    generation        bigint      NOT NULL DEFAULT 0,
    pending_to        bigint,
    failures          integer     NOT NULL DEFAULT 0,
    last_error        text,
    last_error_at     timestamptz,
    last_delivered_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE sinks;
