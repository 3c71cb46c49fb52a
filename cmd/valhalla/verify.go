package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/inorder"
	"github.com/valhalla-platform/valhalla/internal/ledger"
)

const verifyUsage = `usage: valhalla verify --server URL --token T --key VERIFIER_KEY [--state FILE] [--from-seq N --to-seq M]
       valhalla verify --export FILE --key VERIFIER_KEY

Checks the latest signed checkpoint, its consistency with the one saved in
--state by the previous run (then saves the new one), and either the whole
trail (every entry read from the feed, hashed again and the tree's root
recomputed) or, with --from-seq/--to-seq, the entries of that range by
inclusion proofs. An entry that retention dropped is reported as retired
when a retention record signed with the ledger's key covers its seq (its
hash stays in the tree, so the root still verifies); an entry gone with
no such record is missing. Exits 0 when all holds; otherwise prints one
line per finding and exits 1.
`

// verifyPage is the feed page size verify reads.
const verifyPage = 1000

// finding is one thing verify found wrong.
type finding struct {
	kind string // altered, missing, not in tree, signature, inconsistent, tree
	seq  int64  // 0 when none
	id   string // "" when none
	why  string
}

func (f finding) String() string {
	seq, id := "-", "-"
	if f.seq > 0 {
		seq = fmt.Sprint(f.seq)
	}
	if f.id != "" {
		id = f.id
	}
	return fmt.Sprintf("FINDING %s: seq %s id %s: %s", f.kind, seq, id, f.why)
}

// verifier holds one run of valhalla verify.
type verifier struct {
	client   *api.ClientWithResponses
	key      string
	findings []finding
	// retirements are the retention records whose signatures hold;
	// retired counts the entries they account for.
	retirements []ledger.Retirement
	retired     int64
}

func (v *verifier) find(kind string, seq int64, id, why string) {
	v.findings = append(v.findings, finding{kind: kind, seq: seq, id: id, why: why})
}

// verifyCommand runs valhalla verify.
func verifyCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("valhalla verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, verifyUsage); fs.PrintDefaults() }
	var cf clientFlags
	cf.register(fs, getenv)
	key := fs.String("key", getenv("VALHALLA_LEDGER_VERIFIER_KEY"), "the ledger's verifier key, as valhalla ledger key prints it (VALHALLA_LEDGER_VERIFIER_KEY)")
	state := fs.String("state", "", "file holding the checkpoint of the previous run; created when missing")
	fromSeq := fs.Int64("from-seq", 0, "verify only the entries from this seq, by inclusion proofs")
	toSeq := fs.Int64("to-seq", 0, "verify only the entries up to this seq (default: the checkpoint's size)")
	exportFile := fs.String("export", "", "verify this NDJSON export (valhalla logs export) offline, without a server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("verify: unexpected arguments %q", fs.Args())
	}
	if *key == "" {
		return errors.New("verify: --key is required (valhalla ledger key prints it)")
	}
	if *exportFile != "" {
		return verifyExport(*exportFile, *key, stdout)
	}
	client, err := cf.client()
	if err != nil {
		return err
	}
	v := &verifier{client: client, key: *key}
	start := time.Now()

	cp, note, err := v.checkpoint(ctx)
	if err != nil {
		return err
	}
	if cp == nil {
		return v.report(stdout)
	}
	if *state != "" {
		if err := v.checkState(ctx, *state, *cp, note); err != nil {
			return err
		}
	}
	if err := v.loadRetirements(ctx); err != nil {
		return err
	}
	var entries int64
	if *fromSeq > 0 || *toSeq > 0 {
		entries, err = v.verifyRange(ctx, *cp, max(*fromSeq, 1), *toSeq)
	} else {
		entries, err = v.verifyAll(ctx, *cp)
	}
	if err != nil {
		return err
	}
	if err := v.report(stdout); err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Fprintf(stdout, "verified %d entries: tree size %d, root %s, checkpoint signed by %s, in %s (%.0f entries/s)\n",
		entries, cp.Size, base64.StdEncoding.EncodeToString(cp.Root[:]), cp.Origin, d.Round(time.Millisecond), float64(entries)/d.Seconds())
	if len(v.retirements) > 0 {
		fmt.Fprintf(stdout, "%d entries retired by %d signed retention records (their hashes stay in the tree)\n", v.retired, len(v.retirements))
	}
	return nil
}

// loadRetirements reads the retention records and keeps those whose
// signature holds; a record that does not verify is a finding, and the
// entries it claims stay missing.
func (v *verifier) loadRetirements(ctx context.Context) error {
	resp, err := v.client.ListLedgerRetirementsWithResponse(ctx, &api.ListLedgerRetirementsParams{})
	if err != nil {
		return fmt.Errorf("verify: list retention records: %w", err)
	}
	if resp.JSON200 == nil {
		return fmt.Errorf("verify: list retention records: %s", problemLine(resp.HTTPResponse, resp.Body))
	}
	for _, item := range resp.JSON200.Items {
		r, err := ledger.OpenRetirement([]byte(item.Note), v.key)
		if err != nil {
			v.find("signature", 0, "", fmt.Sprintf("the retention record of partition %s does not verify: %v", item.Partition, err))
			continue
		}
		v.retirements = append(v.retirements, r)
	}
	return nil
}

// retiredBy returns the partition whose signed retention record retired
// seq, or "" when none did.
func (v *verifier) retiredBy(seq int64) string {
	for _, r := range v.retirements {
		if r.Covers(seq) {
			return r.Partition
		}
	}
	return ""
}

// gone handles a leaf whose entry is not in the table: retired when a
// signed retention record covers its seq, a finding otherwise.
func (v *verifier) gone(seq int64, id string) {
	if v.retiredBy(seq) != "" {
		v.retired++
		return
	}
	v.find("missing", seq, id, "the entry was deleted from the table, and no retention record retired it")
}

// report prints the findings, one a line, and returns an error when there
// is any.
func (v *verifier) report(stdout io.Writer) error {
	for _, f := range v.findings {
		fmt.Fprintln(stdout, f)
	}
	if len(v.findings) > 0 {
		return fmt.Errorf("verify: %d findings", len(v.findings))
	}
	return nil
}

// checkpoint fetches the latest checkpoint and checks its signature; a bad
// one is a finding, and then it returns a nil checkpoint.
func (v *verifier) checkpoint(ctx context.Context) (*ledger.Checkpoint, []byte, error) {
	resp, err := v.client.GetLedgerCheckpointWithResponse(ctx, &api.GetLedgerCheckpointParams{})
	if err != nil {
		return nil, nil, fmt.Errorf("verify: get checkpoint: %w", err)
	}
	if resp.StatusCode() != http.StatusOK {
		return nil, nil, fmt.Errorf("verify: get checkpoint: %s", problemLine(resp.HTTPResponse, resp.Body))
	}
	cp, err := ledger.OpenCheckpoint(resp.Body, v.key)
	if err != nil {
		v.find("checkpoint signature invalid", 0, "", err.Error())
		return nil, nil, nil
	}
	return &cp, resp.Body, nil
}

// checkState checks cp against the checkpoint saved in path and, when it
// is consistent (or there is none), saves cp's note there.
func (v *verifier) checkState(ctx context.Context, path string, cp ledger.Checkpoint, note []byte) error {
	saved, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("verify: read state: %w", err)
	default:
		old, err := ledger.OpenCheckpoint(saved, v.key)
		if err != nil {
			v.find("inconsistent with saved state", 0, "", "the saved checkpoint does not verify with this key: "+err.Error())
			return nil
		}
		switch {
		case old.Size > cp.Size:
			v.find("inconsistent with saved state", old.Size, "",
				fmt.Sprintf("the trail shrank: the saved checkpoint has %d entries, the server's latest %d (entries %d to %d are gone)", old.Size, cp.Size, cp.Size+1, old.Size))
			return nil
		case old.Size == cp.Size && old.Root != cp.Root:
			v.find("inconsistent with saved state", old.Size, "", "the server's tree of this size has another root than the saved one (a fork)")
			return nil
		case old.Size < cp.Size && old.Size > 0:
			resp, err := v.client.GetLedgerConsistencyWithResponse(ctx, &api.GetLedgerConsistencyParams{From: old.Size, To: cp.Size})
			if err != nil {
				return fmt.Errorf("verify: get consistency proof: %w", err)
			}
			if resp.JSON200 == nil {
				v.find("inconsistent with saved state", old.Size, "", "no consistency proof from the saved checkpoint: "+problemLine(resp.HTTPResponse, resp.Body))
				return nil
			}
			if err := tlog.CheckTree(hashesOf(resp.JSON200.Proof), cp.Size, cp.Root, old.Size, old.Root); err != nil {
				v.find("inconsistent with saved state", old.Size, "",
					fmt.Sprintf("the tree of %d entries does not extend the saved one of %d (a fork or a rewrite): %v", cp.Size, old.Size, err))
				return nil
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("verify: save state: %w", err)
	}
	if err := os.WriteFile(path, note, 0o644); err != nil {
		return fmt.Errorf("verify: save state: %w", err)
	}
	return nil
}

// verifyReaders is how many pages of the feed verify reads at once.
const verifyReaders = 2

// feedRange reads the page of the feed after from and keeps the leaves up
// to through: the next range holds what a page reaches past it. Every leaf
// up to the checkpoint is in the feed (as an entry or a missing entry), so
// the ranges are known before any is read (inorder.Ranges).
func (v *verifier) feedRange(ctx context.Context, from, through int64) pageOrError {
	resp, err := v.client.GetSystemLogFeedWithResponse(ctx, &api.GetSystemLogFeedParams{After: &from, Limit: ptr(int32(through - from))})
	switch {
	case err != nil:
		return pageOrError{err: fmt.Errorf("verify: read feed: %w", err)}
	case resp.JSON200 == nil:
		return pageOrError{err: fmt.Errorf("verify: read feed: %s", problemLine(resp.HTTPResponse, resp.Body))}
	}
	page := resp.JSON200
	page.Items = slices.DeleteFunc(page.Items, func(e api.SystemLog) bool { return e.Seq == nil || *e.Seq > through })
	page.Missing = slices.DeleteFunc(page.Missing, func(m api.MissingEntry) bool { return m.Seq > through })
	return pageOrError{page: page}
}

// pageOrError is a feed page or the error that ended the reading.
type pageOrError struct {
	page *api.SystemLogFeed
	err  error
}

// verifyAll reads the whole feed up to cp's size, hashes every entry again
// and recomputes the root, and lists the entries outside the tree.
func (v *verifier) verifyAll(ctx context.Context, cp ledger.Checkpoint) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stored, recomputed treeBuilder
	next := int64(1)
	// Pages are read verifyReaders at once and ahead of the hashing, so
	// that reading overlaps hashing and the server's time for one page
	// overlaps the next.
	for p := range inorder.Ranges(ctx, 0, cp.Size, verifyPage, verifyReaders, v.feedRange) {
		if p.err != nil {
			return 0, p.err
		}
		for _, l := range mergeFeed(p.page) {
			for ; next < l.seq; next++ {
				v.find("missing", next, "", "the tree has no leaf at this seq")
			}
			next = l.seq + 1
			storedLeaf := tlog.Hash(l.leafHash)
			stored.add(storedLeaf)
			if l.entry == nil {
				v.gone(l.seq, l.id)
				recomputed.add(storedLeaf)
				continue
			}
			h, err := ledger.LeafHash(entryFromAPI(*l.entry))
			if err != nil {
				v.find("altered", l.seq, l.id, "the entry cannot be encoded: "+err.Error())
				recomputed.add(storedLeaf)
				continue
			}
			recomputed.add(h)
			if h != storedLeaf {
				v.find("altered", l.seq, l.id, "the entry does not hash to its leaf in the tree (changed after it was sealed)")
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err // the pages stopped early
	}
	for ; next <= cp.Size; next++ {
		v.find("missing", next, "", "the tree has no leaf at this seq")
	}
	if root := stored.root(); root != cp.Root {
		v.find("tree", 0, "", "the tree's stored hashes do not give the signed root (stored hashes altered)")
	} else if recomputed.root() != cp.Root && len(v.findings) == 0 {
		v.find("tree", 0, "", "the entries do not give the signed root")
	}
	resp, err := v.client.ListUnsealedLogsWithResponse(ctx, &api.ListUnsealedLogsParams{Limit: ptr(int32(1000))})
	if err != nil {
		return 0, fmt.Errorf("verify: list unsealed entries: %w", err)
	}
	if resp.JSON200 == nil {
		return 0, fmt.Errorf("verify: list unsealed entries: %s", problemLine(resp.HTTPResponse, resp.Body))
	}
	for _, e := range resp.JSON200.Items {
		v.find("not in tree", 0, e.Id.String(), "the entry is in the table but neither sealed nor queued to be (written behind the API's back)")
	}
	return stored.size, nil
}

// verifyRange checks the entries with seq in [from, to] (to 0: cp's
// size) by inclusion proofs against cp.
func (v *verifier) verifyRange(ctx context.Context, cp ledger.Checkpoint, from, to int64) (int64, error) {
	if to == 0 || to > cp.Size {
		to = cp.Size
	}
	var n int64
	after := from - 1
	for after < to {
		resp, err := v.client.GetSystemLogFeedWithResponse(ctx, &api.GetSystemLogFeedParams{After: &after, Limit: ptr(int32(verifyPage))})
		if err != nil {
			return 0, fmt.Errorf("verify: read feed: %w", err)
		}
		if resp.JSON200 == nil {
			return 0, fmt.Errorf("verify: read feed: %s", problemLine(resp.HTTPResponse, resp.Body))
		}
		for _, l := range mergeFeed(resp.JSON200) {
			if l.seq > to {
				break
			}
			n++
			if l.entry == nil {
				v.gone(l.seq, l.id)
				continue
			}
			h, err := ledger.LeafHash(entryFromAPI(*l.entry))
			if err != nil {
				v.find("altered", l.seq, l.id, "the entry cannot be encoded: "+err.Error())
				continue
			}
			size := cp.Size
			proof, err := v.client.GetSystemLogProofWithResponse(ctx, l.entry.Id, &api.GetSystemLogProofParams{TreeSize: &size})
			if err != nil {
				return 0, fmt.Errorf("verify: get proof: %w", err)
			}
			if proof.JSON200 == nil {
				v.find("missing", l.seq, l.id, "no inclusion proof: "+problemLine(proof.HTTPResponse, proof.Body))
				continue
			}
			if err := tlog.CheckRecord(hashesOf(proof.JSON200.Proof), cp.Size, cp.Root, l.seq-1, h); err != nil {
				v.find("altered", l.seq, l.id, "the entry is not the one the signed tree holds at this seq")
			}
		}
		if resp.JSON200.NextAfter <= after {
			break
		}
		after = resp.JSON200.NextAfter
	}
	return n, nil
}

// feedLeaf is one leaf a feed page covers: an entry, or a missing one.
type feedLeaf struct {
	seq      int64
	id       string
	leafHash []byte
	entry    *api.SystemLog
}

// mergeFeed returns a page's items and missing entries in seq order.
func mergeFeed(page *api.SystemLogFeed) []feedLeaf {
	out := make([]feedLeaf, 0, len(page.Items)+len(page.Missing))
	i, j := 0, 0
	for i < len(page.Items) || j < len(page.Missing) {
		if j == len(page.Missing) || (i < len(page.Items) && *page.Items[i].Seq < page.Missing[j].Seq) {
			e := &page.Items[i]
			out = append(out, feedLeaf{seq: *e.Seq, id: e.Id.String(), leafHash: *e.LeafHash, entry: e})
			i++
			continue
		}
		m := page.Missing[j]
		out = append(out, feedLeaf{seq: m.Seq, id: m.Id.String(), leafHash: m.LeafHash})
		j++
	}
	return out
}

// entryFromAPI is the ledger's view of an entry as the API returns it.
func entryFromAPI(e api.SystemLog) ledger.Entry {
	return ledger.Entry{
		ID: e.Id, Timestamp: e.Timestamp, Level: string(e.Level), Category: e.Category, Message: e.Message,
		CorrelationID: e.CorrelationId, UserID: e.UserId, TraceID: e.TraceId, Actor: e.Actor, Context: e.Context,
	}
}

func hashesOf(bs [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(bs))
	for i, b := range bs {
		out[i] = tlog.Hash(b)
	}
	return out
}

// treeBuilder computes an RFC 6962 root over leaf hashes added in order,
// keeping only the roots of the complete subtrees on the right edge.
type treeBuilder struct {
	size  int64
	stack []tlog.Hash
}

func (b *treeBuilder) add(leaf tlog.Hash) {
	b.stack = append(b.stack, leaf)
	b.size++
	// Each trailing one bit of the new size merges two equal subtrees.
	for n := b.size; n&1 == 0; n >>= 1 {
		k := len(b.stack)
		b.stack = append(b.stack[:k-2], tlog.NodeHash(b.stack[k-2], b.stack[k-1]))
	}
}

func (b *treeBuilder) root() tlog.Hash {
	if len(b.stack) == 0 {
		h, _ := tlog.TreeHash(0, nil)
		return h
	}
	h := b.stack[len(b.stack)-1]
	for i := len(b.stack) - 2; i >= 0; i-- {
		h = tlog.NodeHash(b.stack[i], h)
	}
	return h
}

// problemLine summarizes an error answer.
func problemLine(resp *http.Response, body []byte) string {
	if resp == nil {
		return "no answer"
	}
	return fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
}
