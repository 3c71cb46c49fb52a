package apiclient

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// Bounds of retryTransport.
const (
	maxRetries   = 8
	maxRetryWait = 30 * time.Second
)

// retryTransport retries a GET or HEAD answered 429 Too Many Requests
// after its Retry-After (at most maxRetryWait at a time, maxRetries
// times): a reader paging through the trail faster than its token's rates
// allow (the read rate counts the bytes of pages) is slowed to them rather
// than failed. Writes are not retried here: the caller decides, with its
// Idempotency-Key.
type retryTransport struct{ base http.RoundTripper }

func (t retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := t.base.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests ||
			(req.Method != http.MethodGet && req.Method != http.MethodHead) || attempt == maxRetries {
			return resp, err
		}
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = min(time.Duration(s)*time.Second, maxRetryWait)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		timer := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			timer.Stop()
			return nil, req.Context().Err()
		case <-timer.C:
		}
	}
}
