-- +goose Up
-- The tree is stored in blocks, one row per sealed write transaction (a
-- batch, a group of single writes), instead of one row per leaf: sealing a
-- 1000-entry batch writes one row, not a thousand rows and two thousand
-- index entries, which were most of what sealing cost a batch
-- (docs/performance.md, "Blocks"). The tree itself, its leaves, seqs and
-- checkpoints, is unchanged.
--
-- A block holds, in seq order, the ids, timestamps and leaf hashes of the
-- entries it sealed (first_seq .. last_seq), and the tree's stored hashes
-- that appending them created (golang.org/x/mod/sumdb/tlog.StoredHashes,
-- record by record: the stored hash of index i is at byte
-- (i - first_index) * 32, first_index being tlog.StoredHashIndex(0,
-- first_seq - 1)). hashes is stored out of line uncompressed, so that a
-- proof reads the few 32-byte slices it needs and not the whole block.
--
-- An entry finds its seq through system_logs.ledger_tx, the id of the
-- queue row that queued it (written with the entry, in its transaction),
-- which becomes the block's tx: seq = first_seq + its position in log_ids.
-- ledger_tx is bookkeeping, not part of the entry: it is not in the leaf's
-- encoding, nor in any response.
CREATE TABLE ledger_blocks (
    first_seq      bigint        PRIMARY KEY CHECK (first_seq >= 1),
    last_seq       bigint        NOT NULL,
    first_index    bigint        NOT NULL CHECK (first_index >= 0),
    tx             bigint        NOT NULL UNIQUE,
    log_ids        uuid[]        NOT NULL,
    log_timestamps timestamptz[] NOT NULL,
    leaf_hashes    bytea[]       NOT NULL,
    hashes         bytea         NOT NULL,
    sealed_at      timestamptz   NOT NULL,
    CHECK (last_seq >= first_seq),
    CHECK (cardinality(log_ids) = last_seq - first_seq + 1),
    CHECK (cardinality(log_timestamps) = cardinality(log_ids) AND cardinality(leaf_hashes) = cardinality(log_ids)),
    CHECK (octet_length(hashes) >= 32 * cardinality(log_ids) AND octet_length(hashes) % 32 = 0)
);
ALTER TABLE ledger_blocks ALTER COLUMN hashes SET STORAGE EXTERNAL;
ALTER TABLE ledger_blocks ALTER COLUMN leaf_hashes SET STORAGE EXTERNAL;

ALTER TABLE system_logs ADD COLUMN ledger_tx bigint;

-- ledger_leaves shows the tree a leaf a row, for people at psql (and
-- tests): it unnests every block, so a query on it reads them all.
CREATE VIEW ledger_leaves AS
SELECT b.first_seq + u.ord - 1 AS seq, u.log_id, u.log_timestamp, u.leaf_hash, b.tx, b.sealed_at
FROM ledger_blocks b
CROSS JOIN LATERAL ROWS FROM (unnest(b.log_ids), unnest(b.log_timestamps), unnest(b.leaf_hashes))
    WITH ORDINALITY AS u (log_id, log_timestamp, leaf_hash, ord);

-- The leaves sealed so far become blocks of 1000, with ids of their own
-- (negative: a queue row's are positive), and their entries point at them;
-- the entries still queued point at their queue row.
INSERT INTO ledger_blocks (first_seq, last_seq, first_index, tx, log_ids, log_timestamps, leaf_hashes, hashes, sealed_at)
SELECT min(seq), max(seq), 2 * (min(seq) - 1) - bit_count((min(seq) - 1)::bit(64)), -((seq - 1) / 1000 + 1),
       array_agg(log_id ORDER BY seq), array_agg(log_timestamp ORDER BY seq),
       array_agg(substring(hashes FROM 1 FOR 32) ORDER BY seq), string_agg(hashes, ''::bytea ORDER BY seq), max(sealed_at)
FROM ledger_entries
GROUP BY (seq - 1) / 1000;
UPDATE system_logs s SET ledger_tx = -((l.seq - 1) / 1000 + 1)
FROM ledger_entries l WHERE l.log_id = s.id;
UPDATE system_logs s SET ledger_tx = q.id
FROM ledger_queue q CROSS JOIN LATERAL unnest(q.log_ids) AS u (id) WHERE u.id = s.id;
DROP TABLE ledger_entries;

-- +goose Down
CREATE TABLE ledger_entries (
    seq           bigint      PRIMARY KEY CHECK (seq >= 1),
    log_id        uuid        NOT NULL UNIQUE,
    hashes        bytea       NOT NULL CHECK (octet_length(hashes) >= 32 AND octet_length(hashes) % 32 = 0),
    sealed_at     timestamptz NOT NULL,
    log_timestamp timestamptz
);
-- Record r's stored hashes start at index 2r - popcount(r).
INSERT INTO ledger_entries (seq, log_id, hashes, sealed_at, log_timestamp)
SELECT b.first_seq + u.ord - 1, u.id,
       substring(b.hashes FROM (((2 * r.r - bit_count(r.r::bit(64))) - b.first_index) * 32 + 1)::int
                 FOR (((2 * (r.r + 1) - bit_count((r.r + 1)::bit(64))) - (2 * r.r - bit_count(r.r::bit(64)))) * 32)::int),
       b.sealed_at, u.ts
FROM ledger_blocks b
CROSS JOIN LATERAL unnest(b.log_ids, b.log_timestamps) WITH ORDINALITY AS u (id, ts, ord)
CROSS JOIN LATERAL (SELECT b.first_seq + u.ord - 2 AS r) r;
ALTER TABLE system_logs DROP COLUMN ledger_tx;
DROP VIEW ledger_leaves;
DROP TABLE ledger_blocks;
