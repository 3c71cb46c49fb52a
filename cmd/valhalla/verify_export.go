package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/valhalla-platform/valhalla/gen/api"
	"github.com/valhalla-platform/valhalla/internal/ledger"
)

// verifyExport verifies an NDJSON export offline: the trailer's checkpoint
// is signed by key; every entry hashes to its leaf; and either the export
// holds every leaf from seq 1 to the checkpoint's size (then the root is
// recomputed and compared) or every entry carries an inclusion proof that
// checks against the checkpoint. It prints one line per finding and
// returns an error when there is any.
func verifyExport(path, key string, stdout io.Writer) error {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	v := &verifier{key: key}
	trailer, err := exportTrailer(f)
	if err != nil {
		v.find("incomplete export", 0, "", err.Error())
		return v.report(stdout)
	}
	cp, err := ledger.OpenCheckpoint([]byte(trailer.Checkpoint), key)
	if err != nil {
		v.find("checkpoint signature invalid", 0, "", err.Error())
		return v.report(stdout)
	}
	if cp.Size != trailer.TreeSize {
		v.find("tree", 0, "", fmt.Sprintf("the trailer says tree size %d, its checkpoint %d", trailer.TreeSize, cp.Size))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 256<<10), 8<<20)
	var (
		tree        treeBuilder
		count, last int64
		contiguous  = true
		unproven    int64
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if bytes.HasPrefix(line, []byte(`{"trailer":`)) {
			break
		}
		var l struct {
			api.SystemLog
			Entry   *api.SystemLog    `json:"entry"`
			Proof   [][]byte          `json:"proof"`
			Missing *api.MissingEntry `json:"missing"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			v.find("malformed", 0, "", fmt.Sprintf("line %d is not an export line: %v", count+1, err))
			continue
		}
		count++
		var seq int64
		var leaf tlog.Hash
		switch {
		case l.Missing != nil:
			seq, leaf = l.Missing.Seq, tlog.Hash(l.Missing.LeafHash)
			v.find("missing", seq, l.Missing.Id.String(), "the entry was deleted from the table before the export")
		default:
			e := l.SystemLog
			if l.Entry != nil {
				e = *l.Entry
			}
			if e.Seq == nil {
				v.find("malformed", 0, e.Id.String(), "an exported entry without a seq")
				continue
			}
			seq = *e.Seq
			h, err := ledger.LeafHash(entryFromAPI(e))
			if err != nil {
				v.find("altered", seq, e.Id.String(), "the entry cannot be encoded: "+err.Error())
				continue
			}
			leaf = h
			if e.LeafHash != nil && tlog.Hash(*e.LeafHash) != h {
				v.find("altered", seq, e.Id.String(), "the entry does not hash to the leaf hash it carries (changed after the export)")
			}
			if l.Entry != nil {
				if err := tlog.CheckRecord(hashesOf(l.Proof), cp.Size, cp.Root, seq-1, h); err != nil {
					v.find("altered", seq, e.Id.String(), "the entry is not the one the signed tree holds at this seq (its proof fails)")
				}
			} else {
				unproven++
			}
		}
		if seq <= last {
			v.find("malformed", seq, "", fmt.Sprintf("seq %d comes after seq %d", seq, last))
		}
		if seq != last+1 {
			contiguous = false
		}
		last = seq
		tree.add(leaf)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("verify: read %s: %w", path, err)
	}
	if count != trailer.Count || last != trailer.LastSeq {
		v.find("incomplete export", last, "", fmt.Sprintf("the file holds %d lines up to seq %d; the trailer says %d up to seq %d", count, last, trailer.Count, trailer.LastSeq))
	}
	complete := contiguous && last == cp.Size
	switch {
	case complete && tree.root() != cp.Root:
		v.find("tree", 0, "", "the exported entries do not give the signed root")
	case !complete && unproven > 0:
		v.find("unverifiable", 0, "", fmt.Sprintf("%d entries carry no proof and the export does not hold every entry from seq 1 to %d: export with proofs=true, or without filters from seq 1", unproven, cp.Size))
	}
	if err := v.report(stdout); err != nil {
		return err
	}
	how := "by inclusion proofs"
	if complete {
		how = "by recomputing the root"
	}
	d := time.Since(start)
	fmt.Fprintf(stdout, "verified export of %d entries %s: tree size %d, root %s, checkpoint signed by %s, in %s\n",
		count, how, cp.Size, base64.StdEncoding.EncodeToString(cp.Root[:]), cp.Origin, d.Round(time.Millisecond))
	return nil
}

// trailerOf is the trailer object of an ExportTrailer line.
type trailerOf = struct {
	Checkpoint string `json:"checkpoint"`
	Count      int64  `json:"count"`
	LastSeq    int64  `json:"last_seq"`
	TreeSize   int64  `json:"tree_size"`
}

// exportTrailer reads r to its last line and returns the trailer it must
// be, or an error saying why the export is incomplete.
func exportTrailer(r io.Reader) (trailerOf, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 256<<10), 8<<20)
	var last []byte
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			last = append(last[:0], sc.Bytes()...)
		}
	}
	if err := sc.Err(); err != nil {
		return trailerOf{}, fmt.Errorf("the file cannot be read: %w", err)
	}
	var end struct {
		Trailer *trailerOf          `json:"trailer"`
		Error   *api.ProblemDetails `json:"error"`
	}
	if err := json.Unmarshal(last, &end); err != nil || (end.Trailer == nil && end.Error == nil) {
		return trailerOf{}, fmt.Errorf("the file does not end with the export's trailer (truncated?)")
	}
	if end.Error != nil {
		return trailerOf{}, fmt.Errorf("the export failed on the server: %s (request id %s)", end.Error.Detail, end.Error.CorrelationId)
	}
	return *end.Trailer, nil
}
