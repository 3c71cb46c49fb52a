package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// goalLimitsRatio is the least the single-write rate with the server's
// limits on (the defaults) may be of the same run with them off.
const goalLimitsRatio = 0.95

// limitsOff are the serve flags that turn off the per-token and
// per-address rate and in-flight limits. The body budget, the connection
// caps and the database timeouts stay: they bound memory and are not
// meant to be turned off.
var limitsOff = []string{
	"--token-rate", "0", "--token-entry-rate", "0", "--token-in-flight", "0", "--token-read-rate", "0",
	"--address-rate", "0", "--address-in-flight", "0",
}

// unlimitedWrite is the single write against srv, a server started with
// limitsOff.
func unlimitedWrite(ctx context.Context, srv *process) func(load) stats {
	target := post(srv.Addr, "/system/logs", writeBody)
	return func(l load) stats { return l.http(ctx, target, http.StatusCreated) }
}

// limitsCost prints what the limits cost the single write and returns its
// target: the full stack's rate over the same stack's with limits off.
func limitsCost(w io.Writer, wr writeResults) target {
	r := ratio(wr.Write.PerSecond(), wr.WriteNoLimits.PerSecond())
	fmt.Fprintf(w, "  full stack ÷ full stack with limits off: %.2f (the cost of the rate and in-flight limits; goal ≥ %g)\n",
		r, goalLimitsRatio)
	return atLeast("single_write_limits_ratio", r, goalLimitsRatio)
}
