package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	valhalla "github.com/valhalla-platform/valhalla"
	"github.com/valhalla-platform/valhalla/internal/database"
	"github.com/valhalla-platform/valhalla/internal/ledger"
	"github.com/valhalla-platform/valhalla/internal/logstore"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

// TestExportFailureEndsWithErrorLine: when the database goes away after
// an export started, the file ends with an error line (a problem, as the
// contract's ExportError) and no trailer, never a silently short file; in
// CSV, with an #error row.
func TestExportFailureEndsWithErrorLine(t *testing.T) {
	t.Parallel()
	pool, err := database.Open(t.Context(), pgtest.NewDatabase(t), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := database.Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	store := logstore.New(pool)
	pool.Close() // the database is gone once the headers are out
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(valhalla.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	for _, csv := range []bool{false, true} {
		rec := httptest.NewRecorder()
		r := exportResponse{
			ctx: context.Background(), store: store, ledger: ledger.NewReader(pool), logger: slog.New(slog.DiscardHandler),
			from: 1, to: 10, checkpoint: ledger.StoredCheckpoint{Size: 10, Note: "unused"}, csv: csv,
		}
		if err := r.VisitExportSystemLogsResponse(rec); err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimSpace(rec.Body.Bytes()), []byte("\n"))
		last := lines[len(lines)-1]
		if csv {
			if !bytes.HasPrefix(last, []byte("#error,")) {
				t.Errorf("CSV export ends with %q, want an #error row", last)
			}
			continue
		}
		var v any
		if err := json.Unmarshal(last, &v); err != nil {
			t.Fatalf("last line %q: %v", last, err)
		}
		if err := spec.Components.Schemas["ExportError"].Value.VisitJSON(v); err != nil {
			t.Errorf("last line %s is not an ExportError: %v", last, err)
		}
		if bytes.Contains(rec.Body.Bytes(), []byte(`"trailer"`)) {
			t.Errorf("a failed export has a trailer: %s", rec.Body.Bytes())
		}
	}
}
