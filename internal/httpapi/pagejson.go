package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/valhalla-platform/valhalla/gen/api"
)

// listResponse is a page of the listing, written with appendSystemLog
// rather than the generated response's encoding/json: a page of the
// largest entries is megabytes of context, which encoding/json scans
// byte by byte to compact and validate (half the server's CPU in the
// abuse suite's pages attack, docs/security.md "Reads by the byte"). The
// bytes are encoding/json's (TestAppendPages).
type listResponse struct {
	body      api.SystemLogList
	requestID string
	// size is about the bytes of the page's entries (logstore.RowsSize),
	// the buffer's first capacity.
	size int
}

func (r listResponse) VisitListSystemLogsResponse(w http.ResponseWriter) error {
	return writePage(w, r.requestID, appendSystemLogList(make([]byte, 0, r.size+pageOverhead), &r.body))
}

// feedResponse is a page of the feed, written as listResponse is.
type feedResponse struct {
	body      api.SystemLogFeed
	requestID string
	size      int // as listResponse's (logstore.SealedSize)
}

func (r feedResponse) VisitGetSystemLogFeedResponse(w http.ResponseWriter) error {
	b, err := appendSystemLogFeed(make([]byte, 0, r.size+pageOverhead), &r.body)
	if err != nil {
		return err
	}
	return writePage(w, r.requestID, b)
}

// writePage writes a 200 JSON page, with the headers the generated
// responses set.
func writePage(w http.ResponseWriter, requestID string, body []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-ID", requestID)
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	return err
}

// pageOverhead is about the bytes of a page around its entries.
const pageOverhead = 256

// appendSystemLogs appends items as encoding/json writes the slice.
func appendSystemLogs(dst []byte, items []api.SystemLog) []byte {
	if items == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendSystemLog(dst, &items[i])
	}
	return append(dst, ']')
}

// appendSystemLogList appends l's JSON and a newline, as
// json.Encoder.Encode writes it.
func appendSystemLogList(dst []byte, l *api.SystemLogList) []byte {
	dst = append(dst, `{"items":`...)
	dst = appendSystemLogs(dst, l.Items)
	dst = append(dst, `,"next_cursor":`...)
	dst = appendOptionalString(dst, l.NextCursor)
	if l.Total != nil {
		dst = append(dst, `,"total":`...)
		dst = strconv.AppendInt(dst, *l.Total, 10)
	}
	if l.TotalRelation != nil {
		dst = append(dst, `,"total_relation":`...)
		dst = appendJSONString(dst, string(*l.TotalRelation))
	}
	return append(dst, "}\n"...)
}

// appendSystemLogFeed appends f's JSON and a newline, as
// json.Encoder.Encode writes it. The missing entries, few and small, are
// left to encoding/json.
func appendSystemLogFeed(dst []byte, f *api.SystemLogFeed) ([]byte, error) {
	dst = append(dst, `{"items":`...)
	dst = appendSystemLogs(dst, f.Items)
	missing, err := json.Marshal(f.Missing)
	if err != nil {
		return nil, err
	}
	dst = append(dst, `,"missing":`...)
	dst = append(dst, missing...)
	dst = append(dst, `,"next_after":`...)
	dst = strconv.AppendInt(dst, f.NextAfter, 10)
	return append(dst, "}\n"...), nil
}
