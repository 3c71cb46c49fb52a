-- name: InsertRetirement :exec
-- InsertRetirement stores the signed record of one partition retention dropped.
INSERT INTO ledger_retirements (partition, range_from, range_to, policy, seq_ranges, retired, held, retired_at, note)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: ListRetirements :many
-- ListRetirements returns the retention records, oldest first.
SELECT * FROM ledger_retirements ORDER BY id;

-- name: CreateHold :execrows
-- CreateHold creates a legal hold; it affects no row when the name is taken
-- (by an active or a released hold).
INSERT INTO legal_holds (name, reason, category, user_id, since, until)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (name) DO NOTHING;

-- name: ListHolds :many
-- ListHolds returns every legal hold, active and released, oldest first.
SELECT * FROM legal_holds ORDER BY created_at, name;

-- name: ReleaseHold :execrows
-- ReleaseHold releases the active hold name; it affects no row when there
-- is none.
UPDATE legal_holds SET released_at = now()
WHERE name = $1 AND released_at IS NULL;
