package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// ErrMalformedRetirement means a note's text is not a retirement record.
var ErrMalformedRetirement = errors.New("not a retirement record")

// SeqRange is the seqs From through To, both included.
type SeqRange struct {
	From, To int64
}

// Retirement is the body of a retention record: retention dropped the
// partition Partition (entries with timestamps in [From, To)) under
// Policy at At, and with it the sealed entries of Seqs (Retired of them);
// Held entries of the partition were kept by legal holds. The tree keeps
// every hash, so the root still verifies; the record tells a verifier that
// these seqs were retired, not deleted.
type Retirement struct {
	Origin    string
	Partition string
	From, To  time.Time
	Policy    string
	Retired   int64
	Held      int64
	Seqs      []SeqRange
	At        time.Time
}

// retirementSuffix ends a retirement record's first line, so that no
// retirement record reads as a checkpoint (whose first line is the origin
// alone) and the reverse.
const retirementSuffix = "/retirement"

// FormatSeqRanges writes ranges as "a-b,c-d" ("" for none).
func FormatSeqRanges(ranges []SeqRange) string {
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		parts[i] = fmt.Sprintf("%d-%d", r.From, r.To)
	}
	return strings.Join(parts, ",")
}

// ParseSeqRanges parses FormatSeqRanges' output; ranges must be ascending
// and apart. It returns ErrMalformedRetirement (wrapped) otherwise.
func ParseSeqRanges(s string) ([]SeqRange, error) {
	if s == "" {
		return nil, nil
	}
	var out []SeqRange
	for part := range strings.SplitSeq(s, ",") {
		a, b, ok := strings.Cut(part, "-")
		from, err1 := strconv.ParseInt(a, 10, 64)
		to, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || from < 1 || to < from || (len(out) > 0 && from <= out[len(out)-1].To) {
			return nil, fmt.Errorf("%w: seq range %q", ErrMalformedRetirement, part)
		}
		out = append(out, SeqRange{From: from, To: to})
	}
	return out, nil
}

// Covers reports whether seq is one of r's retired seqs.
func (r Retirement) Covers(seq int64) bool {
	for _, s := range r.Seqs {
		if seq >= s.From && seq <= s.To {
			return true
		}
	}
	return false
}

// String is the record's note text, one field a line.
func (r Retirement) String() string {
	return fmt.Sprintf("%s%s\npartition %s\nfrom %s\nto %s\npolicy %s\nretired %d\nheld %d\nseqs %s\nat %s\n",
		r.Origin, retirementSuffix, r.Partition, r.From.UTC().Format(time.RFC3339Nano), r.To.UTC().Format(time.RFC3339Nano),
		r.Policy, r.Retired, r.Held, FormatSeqRanges(r.Seqs), r.At.UTC().Format(time.RFC3339Nano))
}

// ParseRetirement parses a record's note text. It returns
// ErrMalformedRetirement (wrapped) for anything else.
func ParseRetirement(text string) (Retirement, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 9 || !strings.HasSuffix(lines[0], retirementSuffix) {
		return Retirement{}, fmt.Errorf("%w: want nine lines, the first ending in %s", ErrMalformedRetirement, retirementSuffix)
	}
	r := Retirement{Origin: strings.TrimSuffix(lines[0], retirementSuffix)}
	field := func(i int, name string) (string, error) {
		v, ok := strings.CutPrefix(lines[i], name+" ")
		if !ok {
			return "", fmt.Errorf("%w: line %d is not %s", ErrMalformedRetirement, i+1, name)
		}
		return v, nil
	}
	var errs []error
	str := func(i int, name string) string {
		v, err := field(i, name)
		errs = append(errs, err)
		return v
	}
	stamp := func(i int, name string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, str(i, name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %v", ErrMalformedRetirement, name, err))
		}
		return t
	}
	count := func(i int, name string) int64 {
		n, err := strconv.ParseInt(str(i, name), 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%w: %s is not a count", ErrMalformedRetirement, name))
		}
		return n
	}
	r.Partition = str(1, "partition")
	r.From, r.To = stamp(2, "from"), stamp(3, "to")
	r.Policy = str(4, "policy")
	r.Retired, r.Held = count(5, "retired"), count(6, "held")
	seqs, err := ParseSeqRanges(str(7, "seqs"))
	errs = append(errs, err)
	r.Seqs = seqs
	r.At = stamp(8, "at")
	if err := errors.Join(errs...); err != nil {
		return Retirement{}, err
	}
	var n int64
	for _, s := range r.Seqs {
		n += s.To - s.From + 1
	}
	if n != r.Retired {
		return Retirement{}, fmt.Errorf("%w: the seq ranges hold %d entries, not %d", ErrMalformedRetirement, n, r.Retired)
	}
	return r, nil
}

// SignRetirement signs r as a note with the ledger's key; r's origin is
// the key's name.
func (k *Key) SignRetirement(r Retirement) ([]byte, error) {
	r.Origin = k.Name()
	msg, err := note.Sign(&note.Note{Text: r.String()}, k.signer)
	if err != nil {
		return nil, fmt.Errorf("sign retirement record: %w", err)
	}
	return msg, nil
}

// OpenRetirement verifies the signed note msg with verifierKey and returns
// its record, whose origin must be the key's name. It returns
// ErrBadSignature or ErrMalformedRetirement (wrapped).
func OpenRetirement(msg []byte, verifierKey string) (Retirement, error) {
	v, err := note.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return Retirement{}, fmt.Errorf("verifier key: %w", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Retirement{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	r, err := ParseRetirement(n.Text)
	if err != nil {
		return Retirement{}, err
	}
	if r.Origin != v.Name() {
		return Retirement{}, fmt.Errorf("%w: origin %q is not the key's name %q", ErrMalformedRetirement, r.Origin, v.Name())
	}
	return r, nil
}

// StoredRetirement is a retention record as stored and served: its fields
// and the signed note that holds them.
type StoredRetirement struct {
	Partition string
	From, To  time.Time
	Policy    string
	SeqRanges string
	Retired   int64
	Held      int64
	RetiredAt time.Time
	Note      string
}

// Retirements returns the retention records, oldest first.
func (r *Reader) Retirements(ctx context.Context) ([]StoredRetirement, error) {
	rows, err := r.q.ListRetirements(ctx)
	if err != nil {
		return nil, fmt.Errorf("list retirements: %w", err)
	}
	out := make([]StoredRetirement, len(rows))
	for i, row := range rows {
		out[i] = StoredRetirement{
			Partition: row.Partition, From: row.RangeFrom, To: row.RangeTo, Policy: row.Policy, SeqRanges: row.SeqRanges,
			Retired: row.Retired, Held: row.Held, RetiredAt: row.RetiredAt, Note: row.Note,
		}
	}
	return out, nil
}
