package lifecycle

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/valhalla-platform/valhalla/internal/duty"
)

// The duties of Serve, each done by one server of a database at a time:
// the holder of its session advisory lock (internal/duty). Each run of
// either also takes the maintenance lock (lockKey), which valhalla
// retention run takes too, so that no two runs overlap.
const (
	// MaintainerLock is held by the partition maintainer, which creates
	// partitions ahead and moves rows out of the default partition.
	MaintainerLock int64 = 0x76_68_6c_5f_70_61_72 // "vhl_par"
	// RetentionLock is held by the retention runner, which drops the
	// partitions older than the retention.
	RetentionLock int64 = 0x76_68_6c_5f_72_65_74 // "vhl_ret"
)

// Duty names a duty of Serve.
type Duty string

// The duties of Serve.
const (
	Maintaining Duty = "partition maintainer"
	Retaining   Duty = "retention runner"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	// Connect opens the connection that holds a duty's lock.
	Connect func(ctx context.Context) (*pgx.Conn, error)
	// Every is the time between runs (DefaultEvery when 0); a server
	// runs at once when it takes a duty.
	Every time.Duration
	// Leading, when set, is told when this server takes a duty (true) and
	// gives it up (false).
	Leading func(d Duty, leading bool)
}

// Serve competes, until ctx is done, for the partition maintainer's duty
// and, when a retention is set, for the retention runner's; while this
// server holds one, it does it every o.Every on the duty's connection.
// Errors are logged; a run that finds valhalla retention run running
// skips.
func (m *Maintainer) Serve(ctx context.Context, o ServeOptions) {
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	var wg sync.WaitGroup
	wg.Go(func() { m.serve(ctx, o, Maintaining, MaintainerLock, true, false) })
	if m.opts.Retention > 0 {
		wg.Go(func() { m.serve(ctx, o, Retaining, RetentionLock, false, true) })
	} else {
		m.opts.Logger.Info("lifecycle: no retention runner: entries are kept forever (--retention)")
	}
	wg.Wait()
}

// serve does duty d (creating partitions, retiring them) while it holds
// its lock.
func (m *Maintainer) serve(ctx context.Context, o ServeOptions, d Duty, lock int64, create, retire bool) {
	var leading func(bool)
	if o.Leading != nil {
		leading = func(on bool) { o.Leading(d, on) }
	}
	duty.Run(ctx, duty.Options{Name: string(d), Lock: lock, Connect: o.Connect, Leading: leading, Logger: m.opts.Logger},
		func(ctx context.Context, conn *pgx.Conn) error {
			m.opts.Logger.Info("lifecycle: this server is the "+string(d), "every", o.Every)
			runs := time.NewTicker(o.Every)
			defer runs.Stop()
			// The lock is the connection's: a ping every poll notices a
			// lost connection, so that this server stops saying it leads.
			pings := time.NewTicker(duty.DefaultPoll)
			defer pings.Stop()
			for {
				m.runOnce(ctx, conn, create, retire)
				for waiting := true; waiting; {
					select {
					case <-ctx.Done():
						return nil
					case <-pings.C:
						if err := conn.Ping(ctx); err != nil {
							if ctx.Err() != nil {
								return nil
							}
							return err
						}
					case <-runs.C:
						waiting = false
					}
				}
			}
		})
}

// runOnce does one run on conn, the duty's own connection (so that it
// takes none of the pool's from requests), and logs what it did.
func (m *Maintainer) runOnce(ctx context.Context, conn *pgx.Conn, create, retire bool) {
	log := m.opts.Logger
	rep, err := m.run(ctx, conn, false, create, retire)
	switch {
	case errors.Is(err, ErrBusy):
	case err != nil && ctx.Err() == nil:
		log.Error("lifecycle: maintenance failed; retrying at the next run", "error", err)
	case err == nil:
		for _, p := range rep.Created {
			log.Info("lifecycle: partition created", "partition", p.Name, "from", p.From, "to", p.To)
		}
		for _, d := range rep.Drops {
			if !d.Waiting {
				log.Info("lifecycle: partition dropped by retention", "partition", d.Partition.Name,
					"retired", d.Retired, "held", d.Held, "unsealed", d.Unsealed)
			}
		}
	}
}
