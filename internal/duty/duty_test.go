package duty_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/valhalla-platform/valhalla/internal/duty"
	"github.com/valhalla-platform/valhalla/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const testLock int64 = 0x76_68_6c_5f_74_73_74 // "vhl_tst"

// candidate is one server competing for the duty.
type candidate struct {
	mu      sync.Mutex
	leading bool
	leads   int
	losses  int
	stop    context.CancelFunc
	done    chan struct{}
	// conn is the connection it leads on, while it leads.
	conn *pgx.Conn
}

func (c *candidate) state() (leading bool, leads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading, c.leads
}

// start runs a candidate until the test ends or it is stopped.
func start(t *testing.T, url string) *candidate {
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		duty.Run(ctx, duty.Options{
			Name: "test duty", Lock: testLock, Poll: 20 * time.Millisecond,
			Connect: func(ctx context.Context) (*pgx.Conn, error) { return pgx.Connect(ctx, url) },
			Leading: func(on bool) {
				c.mu.Lock()
				defer c.mu.Unlock()
				c.leading = on
				if on {
					c.leads++
				} else {
					c.losses++
				}
			},
		}, func(ctx context.Context, conn *pgx.Conn) error {
			c.mu.Lock()
			c.conn = conn
			c.mu.Unlock()
			// Lead until stopped or the connection fails, as a real
			// duty does.
			for {
				if !duty.Wait(ctx, 10*time.Millisecond) {
					return nil
				}
				if err := conn.Ping(ctx); err != nil {
					return err
				}
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

// waitLeader polls until exactly one of cs leads and returns it.
func waitLeader(t *testing.T, cs ...*candidate) *candidate {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var leaders []*candidate
		for _, c := range cs {
			if on, _ := c.state(); on {
				leaders = append(leaders, c)
			}
		}
		if len(leaders) > 1 {
			t.Fatalf("%d candidates lead at once", len(leaders))
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("no candidate leads after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOneLeaderAndTakeover: of three candidates one leads; when it stops,
// or its connection is killed from the database's side, another takes over.
func TestOneLeaderAndTakeover(t *testing.T) {
	url := pgtest.NewDatabase(t)
	cs := []*candidate{start(t, url), start(t, url), start(t, url)}
	others := func(not *candidate) []*candidate {
		var out []*candidate
		for _, c := range cs {
			if c != not {
				out = append(out, c)
			}
		}
		return out
	}

	first := waitLeader(t, cs...)
	first.stop()
	<-first.done
	if on, _ := first.state(); on {
		t.Fatal("a stopped candidate still says it leads")
	}
	stopped := time.Now()
	second := waitLeader(t, others(first)...)
	t.Logf("taken over %v after the leader stopped", time.Since(stopped).Round(time.Millisecond))

	// The leader's backend is terminated, as when its server is cut off:
	// it stops leading, and one of the two live candidates leads again.
	second.mu.Lock()
	pid := second.conn.PgConn().PID()
	second.mu.Unlock()
	admin, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var killed bool
	if err := admin.QueryRow(t.Context(), "SELECT pg_terminate_backend($1)", pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the leader's backend %d: %v %v", pid, killed, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		second.mu.Lock()
		lost := second.losses > 0
		second.mu.Unlock()
		if lost {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the leader whose connection was killed still says it leads after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitLeader(t, others(first)...)
	var holders int
	if err := admin.QueryRow(t.Context(), fmt.Sprintf(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid = (%d >> 32)::oid AND objid = (%d & 4294967295)::oid AND objsubid = 1`, testLock, testLock)).Scan(&holders); err != nil {
		t.Fatal(err)
	}
	if holders != 1 {
		t.Errorf("%d sessions hold the duty's lock, want 1", holders)
	}
}
