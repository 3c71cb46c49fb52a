-- +goose Up
-- ledger_retired_ids keeps the seq of every entry retention dropped, by id,
-- so that a proof of a retired entry finds its leaf: its row, and with it
-- the ledger_tx that leads to its block, are gone. Retention writes it in
-- the transaction that drops the partition (docs/lifecycle.md, "The trail
-- stays whole"), a row per retired entry, off the write path.
CREATE TABLE ledger_retired_ids (
    log_id uuid   PRIMARY KEY,
    seq    bigint NOT NULL
);

-- The leaves of the retention records written so far (held entries among
-- them too: a proof looks here only for an id no longer stored).
INSERT INTO ledger_retired_ids (log_id, seq)
SELECT l.log_id, l.seq
FROM ledger_retirements r
CROSS JOIN LATERAL regexp_split_to_table(r.seq_ranges, ',') AS x (part)
CROSS JOIN LATERAL (SELECT split_part(x.part, '-', 1)::bigint AS lo, split_part(x.part, '-', 2)::bigint AS hi) g
JOIN ledger_blocks b ON b.first_seq <= g.hi AND b.last_seq >= g.lo
CROSS JOIN LATERAL (SELECT b.first_seq + u.ord - 1 AS seq, u.id AS log_id
                    FROM unnest(b.log_ids) WITH ORDINALITY AS u (id, ord)) l
WHERE x.part <> '' AND l.seq BETWEEN g.lo AND g.hi
ON CONFLICT DO NOTHING;

-- +goose Down
DROP TABLE ledger_retired_ids;
