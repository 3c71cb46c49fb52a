// Package duty elects, among the servers of one database, the one that
// does a job: the holder of a session advisory lock on a connection of its
// own. Every server runs Run for the job; one leads, the others try again
// every Poll, and a leader that dies (kill -9, a lost connection) loses its
// session and so the lock, which lets another take over within about Poll.
// The sequencer (internal/ledger), the partition maintainer and the
// retention runner (internal/lifecycle) are such jobs (docs/scaling.md).
package duty

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPoll is how often a server that does not hold a duty tries to.
const DefaultPoll = time.Second

// Options describe a duty.
type Options struct {
	// Name names the duty in logs ("ledger sequencer").
	Name string
	// Lock is the key of the session advisory lock the holder holds. In
	// pg_locks it shows as locktype advisory with classid its high 32
	// bits, objid its low 32 bits and objsubid 1.
	Lock int64
	// Connect opens the connection that holds the lock; lead gets it.
	Connect func(ctx context.Context) (*pgx.Conn, error)
	// Poll is how often to try for the lock (DefaultPoll when 0).
	Poll time.Duration
	// Leading, when set, is told when this server takes the duty (true)
	// and when it gives it up (false).
	Leading func(bool)
	Logger  *slog.Logger
}

// Run competes for the duty until ctx is done and, each time it holds the
// lock, calls lead with the connection holding it. lead does the duty
// until ctx is done (returning nil) or the connection fails (returning the
// error); Run then closes the connection, which releases the lock, and
// competes again.
func Run(ctx context.Context, o Options, lead func(ctx context.Context, conn *pgx.Conn) error) {
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for ctx.Err() == nil {
		conn, err := o.Connect(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("cannot connect to compete for a duty", "duty", o.Name, "error", err)
			}
			Wait(ctx, o.Poll)
			continue
		}
		err = compete(ctx, o, conn, lead)
		if err != nil && ctx.Err() == nil {
			log.Warn("duty connection lost", "duty", o.Name, "error", err)
		}
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = conn.Close(closeCtx) // releases the lock
		cancel()
		Wait(ctx, o.Poll)
	}
}

// compete tries for the lock every Poll and, once it has it, leads.
func compete(ctx context.Context, o Options, conn *pgx.Conn, lead func(context.Context, *pgx.Conn) error) error {
	for {
		var locked bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", o.Lock).Scan(&locked); err != nil {
			return fmt.Errorf("try the lock of the %s: %w", o.Name, err)
		}
		if locked {
			if o.Leading != nil {
				o.Leading(true)
				defer o.Leading(false)
			}
			return lead(ctx, conn)
		}
		if !Wait(ctx, o.Poll) {
			return nil
		}
	}
}

// Wait waits d or until ctx is done; it reports whether d passed.
func Wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
