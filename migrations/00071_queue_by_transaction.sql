-- +goose Up
-- The queue holds one row per write transaction instead of one per entry:
-- the ids, timestamps and leaf hashes (ledger.WriteLeafHash; a NULL
-- element: the sequencer hashes the stored entry) of the entries it
-- stored, in the same transaction. Commit order is the order of
-- transactions, so a seal pass sorts, reads and dequeues one row per
-- transaction (a 1000-entry batch: one row) instead of one per entry, and
-- a write queues one row instead of one per entry (docs/ledger.md, "The
-- queue"). Within a transaction entries are sealed in ("timestamp", id)
-- order, as before.
CREATE TABLE ledger_queue_tx (
    id             bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    log_ids        uuid[]        NOT NULL CHECK (cardinality(log_ids) > 0),
    log_timestamps timestamptz[] NOT NULL,
    leaf_hashes    bytea[]       NOT NULL,
    queued_at      timestamptz   NOT NULL DEFAULT now(),
    CHECK (cardinality(log_timestamps) = cardinality(log_ids) AND cardinality(leaf_hashes) = cardinality(log_ids))
);

-- Entries still queued keep their order: one row per transaction (and per
-- 10,000 entries of one), inserted in commit order, which the identity
-- then keeps among rows of this one transaction.
INSERT INTO ledger_queue_tx (log_ids, log_timestamps, leaf_hashes, queued_at)
SELECT array_agg(log_id ORDER BY ts, log_id), array_agg(ts ORDER BY ts, log_id),
       array_agg(leaf_hash ORDER BY ts, log_id), min(queued_at)
FROM (SELECT log_id, coalesce(log_timestamp, queued_at) AS ts, leaf_hash, queued_at, xmin::text::bigint AS x,
             pg_xact_commit_timestamp(xmin) AS committed, age(xmin) AS aged,
             (row_number() OVER (PARTITION BY xmin::text::bigint ORDER BY coalesce(log_timestamp, queued_at), log_id) - 1) / 10000 AS part
      FROM ledger_queue) q
GROUP BY x, committed, aged, part
ORDER BY committed NULLS FIRST, aged DESC, part;

DROP TABLE ledger_queue;
DROP FUNCTION ledger_queue_log_timestamp();
ALTER TABLE ledger_queue_tx RENAME TO ledger_queue;
ALTER TABLE ledger_queue RENAME CONSTRAINT ledger_queue_tx_pkey TO ledger_queue_pkey;

-- +goose Down
ALTER TABLE ledger_queue RENAME TO ledger_queue_tx;
CREATE TABLE ledger_queue (
    log_id        uuid        PRIMARY KEY,
    queued_at     timestamptz NOT NULL DEFAULT now(),
    log_timestamp timestamptz,
    leaf_hash     bytea CHECK (octet_length(leaf_hash) = 32)
);
INSERT INTO ledger_queue (log_id, queued_at, log_timestamp, leaf_hash)
SELECT u.log_id, q.queued_at, u.ts, u.leaf_hash
FROM ledger_queue_tx q CROSS JOIN LATERAL unnest(q.log_ids, q.log_timestamps, q.leaf_hashes) AS u (log_id, ts, leaf_hash)
ORDER BY q.id;
DROP TABLE ledger_queue_tx;
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
