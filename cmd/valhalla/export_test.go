package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valhalla-platform/valhalla/gen/api"
)

// export fetches GET /system/logs/export?query (with extra headers as
// name, value pairs), checks the answer's status and headers and every
// NDJSON line against the contract, and returns the body.
func (in *instance) export(t *testing.T, query string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), http.MethodGet, in.URL+"/system/logs/export?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+in.Token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		if err := checkResponse(req, resp, body); err != nil {
			t.Errorf("export breaks the contract: %v", err)
		}
		return resp, body
	}
	checkStreamingResponse(t, req, resp)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		checkExportLines(t, body)
	}
	return resp, body
}

// checkExportLines checks each line against its schema: entries, then one
// trailer or error line last.
func checkExportLines(t *testing.T, body []byte) {
	t.Helper()
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	for i, l := range lines {
		last := i == len(lines)-1
		switch {
		case bytes.HasPrefix(l, []byte(`{"trailer":`)) && last:
			validateSchema(t, "ExportTrailer", l)
		case bytes.HasPrefix(l, []byte(`{"error":`)) && last:
			validateSchema(t, "ExportError", l)
		case bytes.HasPrefix(l, []byte(`{"entry":`)):
			validateSchema(t, "ExportProvenEntry", l)
		case bytes.HasPrefix(l, []byte(`{"missing":`)):
			validateSchema(t, "ExportMissing", l)
		case last:
			t.Errorf("the export ends with neither a trailer nor an error line: %s", l)
		default:
			validateSchema(t, "SystemLog", l)
		}
	}
}

func trailerLine(t *testing.T, body []byte) trailerOf {
	t.Helper()
	lines := bytes.Split(bytes.TrimSpace(body), []byte("\n"))
	var tr struct{ Trailer trailerOf }
	if err := json.Unmarshal(lines[len(lines)-1], &tr); err != nil {
		t.Fatalf("trailer: %v", err)
	}
	return tr.Trailer
}

// verifyFile runs valhalla verify --export on body.
func verifyFile(t *testing.T, key string, body []byte) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.ndjson")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"verify", "--export", path, "--key", key}, func(string) string { return "" }, &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestExportVerifiesOffline: an unfiltered export from seq 1 holds every
// entry in seq order and a signed trailer, and verifies offline by its
// root; an altered or truncated file does not; a filtered export verifies
// by its proofs, and only with them; seq ranges, CSV by Accept or format,
// and valhalla logs export give the same entries.
func TestExportVerifiesOffline(t *testing.T) {
	t.Parallel()
	srv, pool := ledgerSetup(t)
	for i := range 12 {
		cat := "a"
		if i%3 == 0 {
			cat = "b"
		}
		srv.writeLogs(t, entry(cat, "INFO", fmt.Sprintf("m%d, \"quoted\"", i)))
	}
	size := waitSealed(t, pool)
	key := serverKey(t, srv)

	resp, full := srv.export(t, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %s", resp.StatusCode, full)
	}
	if tr := trailerLine(t, full); tr.Count != size || tr.LastSeq != size || tr.TreeSize != size {
		t.Errorf("trailer %+v, want %d entries up to seq %d", tr, size, size)
	}
	if out, err := verifyFile(t, key, full); err != nil || !strings.Contains(out, "by recomputing the root") {
		t.Errorf("verify the full export: %v\n%s", err, out)
	}
	altered := bytes.Replace(full, []byte(`m4, \"quoted\"`), []byte(`m4, \"edited\"`), 1)
	if out, err := verifyFile(t, key, altered); err == nil || !strings.Contains(out, "FINDING altered: seq 5") {
		t.Errorf("an altered export verified: %v\n%s", err, out)
	}
	lines := bytes.SplitAfter(full, []byte("\n"))
	truncated := bytes.Join(lines[:len(lines)-3], nil)
	if out, err := verifyFile(t, key, truncated); err == nil || !strings.Contains(out, "incomplete export") {
		t.Errorf("a truncated export verified: %v\n%s", err, out)
	}
	if out, err := verifyFile(t, "valhalla+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", full); err == nil {
		t.Errorf("an export verified with another key: %s", out)
	}

	_, filtered := srv.export(t, "category=b")
	if tr := trailerLine(t, filtered); tr.Count != 4 {
		t.Errorf("category=b exported %d entries, want 4", tr.Count)
	}
	if out, err := verifyFile(t, key, filtered); err == nil || !strings.Contains(out, "unverifiable") {
		t.Errorf("a filtered export without proofs verified: %v\n%s", err, out)
	}
	_, proven := srv.export(t, "category=b&proofs=true")
	if out, err := verifyFile(t, key, proven); err != nil || !strings.Contains(out, "by inclusion proofs") {
		t.Errorf("a filtered export with proofs: %v\n%s", err, out)
	}

	_, ranged := srv.export(t, "from_seq=3&to_seq=7")
	if tr := trailerLine(t, ranged); tr.Count != 5 || tr.LastSeq != 7 {
		t.Errorf("from_seq=3&to_seq=7: trailer %+v", tr)
	}
	if _, empty := srv.export(t, "from_seq=7&to_seq=3"); trailerLine(t, empty).Count != 0 {
		t.Errorf("from_seq after to_seq: trailer %+v, want an empty export", trailerLine(t, empty))
	}

	for _, how := range [][]string{{"", "Accept", "text/csv"}, {"format=csv"}} {
		resp, body := srv.export(t, how[0], how[1:]...)
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
			t.Errorf("%v: Content-Type %q", how, resp.Header.Get("Content-Type"))
		}
		rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil || len(rows) != int(size)+1 || rows[0][0] != "seq" || rows[5][0] != "5" || rows[5][5] != `m4, "quoted"` {
			t.Errorf("%v: %d rows (%v): %q", how, len(rows), err, body)
		}
	}

	var out, errOut bytes.Buffer
	env := map[string]string{"VALHALLA_URL": srv.URL, "VALHALLA_TOKEN": srv.Token}
	if err := run(ctx(t), []string{"logs", "export", "--category", "b", "--proofs"}, func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatalf("logs export: %v %s", err, errOut.String())
	}
	if errOut.Len() != 0 {
		t.Errorf("logs export wrote to a stderr that is not a terminal: %q", errOut.String())
	}
	if got, want := entryLines(out.Bytes()), entryLines(proven); got != want {
		t.Errorf("logs export printed\n%s\nthe API gave\n%s", got, want)
	}
}

// entryLines is the export without its trailer (whose checkpoint may be
// newer).
func entryLines(body []byte) string {
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !bytes.HasPrefix(sc.Bytes(), []byte(`{"trailer":`)) {
			b.Write(sc.Bytes())
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// TestExportSpansPages: an export several pages long (the server reads
// its pages at once, on several connections) still holds every entry once
// in seq order, verifies by its root, and its filters and seq ranges cut
// across pages as they do within one; valhalla verify, which also reads
// pages at once, verifies the same trail, and names an entry deleted in
// the middle of a page that is not the first.
func TestExportSpansPages(t *testing.T) {
	t.Parallel()
	srv, pool := ledgerSetup(t)
	const total, batch = 2345, 469 // five batches: 2 pages, then part of a third
	for b := range total / batch {
		entries := make([]api.SystemLogCreate, batch)
		for i := range entries {
			cat := "a"
			if (b*batch+i)%7 == 0 {
				cat = "b"
			}
			entries[i] = entry(cat, "INFO", fmt.Sprintf("m%d", b*batch+i))
		}
		resp, err := srv.Client.CreateSystemLogBatchWithResponse(ctx(t), &api.CreateSystemLogBatchParams{}, api.SystemLogBatchCreate{Entries: entries})
		if err != nil || resp.JSON201 == nil {
			t.Fatalf("batch write: %v %s", err, resp.Body)
		}
	}
	size := waitSealed(t, pool)
	if size != total {
		t.Fatalf("sealed %d entries, want %d", size, total)
	}
	key := serverKey(t, srv)

	_, full := srv.export(t, "")
	checkExportLines(t, full)
	if tr := trailerLine(t, full); tr.Count != total || tr.LastSeq != total {
		t.Errorf("trailer %+v, want %d entries up to seq %d", tr, total, total)
	}
	var prev int64
	for line := range bytes.Lines(full) {
		var e struct{ Seq *int64 }
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if e.Seq == nil { // the trailer
			continue
		}
		if *e.Seq != prev+1 {
			t.Fatalf("seq %d follows seq %d", *e.Seq, prev)
		}
		prev = *e.Seq
	}
	if out, err := verifyFile(t, key, full); err != nil || !strings.Contains(out, "by recomputing the root") {
		t.Errorf("verify the export: %v\n%s", err, out)
	}

	var wantB int64
	if err := pool.QueryRow(ctx(t), `SELECT count(*) FROM system_logs WHERE category = 'b'`).Scan(&wantB); err != nil {
		t.Fatal(err)
	}
	if _, filtered := srv.export(t, "category=b"); trailerLine(t, filtered).Count != wantB {
		t.Errorf("category=b exported %d entries, want %d", trailerLine(t, filtered).Count, wantB)
	}
	if _, ranged := srv.export(t, "from_seq=999&to_seq=2001"); trailerLine(t, ranged).Count != 1003 || trailerLine(t, ranged).LastSeq != 2001 {
		t.Errorf("from_seq=999&to_seq=2001: trailer %+v, want 1003 entries up to 2001", trailerLine(t, ranged))
	}

	if out, ok := verifyRun(t, srv, key, ""); !ok || !strings.Contains(out, fmt.Sprintf("verified %d entries", total)) {
		t.Errorf("verify: ok=%v\n%s", ok, out)
	}
	var id string
	if err := pool.QueryRow(ctx(t), `SELECT log_id::text FROM ledger_leaves WHERE seq = 1500`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	sqlExec(t, pool, "DELETE FROM system_logs WHERE id = $1", id)
	out, ok := verifyRun(t, srv, key, "")
	if want := "FINDING missing: seq 1500 id " + id; ok || !strings.Contains(out, want) || strings.Count(out, "FINDING") != 1 {
		t.Errorf("verify after deleting seq 1500: ok=%v, want exactly %q\n%s", ok, want, out)
	}
}
