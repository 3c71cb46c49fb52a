package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// changesChannel is the PostgreSQL notification channel a trigger on
// api_tokens notifies whenever a token is created, updated or deleted (see
// the migrations 00014_notify_api_tokens_changes.sql and
// 00030_notify_api_tokens_inserts.sql).
const changesChannel = "valhalla_api_tokens"

// RevocationDelay is the longest a server goes on accepting a token after
// its revocation has committed: no server trusts what it remembers of a
// token for longer than this, even when it never heard PostgreSQL's
// notification of the change (a notification lost with a connection that
// failed silently, say). A server that hears the notification forgets the
// token as soon as it arrives, within milliseconds of the commit; one whose
// notification connection is down remembers nothing and reads the database
// on every request, so it refuses the token at once.
const RevocationDelay = time.Second

const (
	// watchPing is how long the listener waits for a notification before it
	// checks that its connection is still alive.
	watchPing = 15 * time.Second
	// watchRetry is the pause before Watch reconnects a lost listener.
	watchRetry = time.Second
)

// cache remembers the tokens Authenticate found in the database, so that a
// request with a known token costs no round trip. It is only used while
// Watch listens for changes to api_tokens: every change (a revocation above
// all) and every loss of the listening connection empties it, and the epoch
// keeps a lookup that raced with a change from filling it with what the
// change replaced. An entry is trusted for RevocationDelay from the start
// of the lookup that read it, whatever Watch hears.
// change replaced.
//
// It also remembers the public ids the database does not know (or knows
// only revoked), up to maxUnknown of them, so that a stranger's guesses
// cost no round trip either; a token created anywhere notifies too, and
// so makes every server forget them.
type cache struct {
	mu      sync.Mutex
	live    bool   // Watch is listening, so the entries are current
	epoch   uint64 // counts the resets
	entries map[string]cachedToken
	unknown map[string]time.Time // public ids no active token has, until when
}

// maxUnknown bounds the unknown public ids remembered; when it is reached
// they are all forgotten, and remembered again as they come.
const maxUnknown = 10_000

// cachedToken is a token as stored: the hash of its secret, and its caller.
type cachedToken struct {
	secretHash []byte
	principal  Principal
	// expires is when the entry must be read again: RevocationDelay after
	// the lookup that read it began, so before any revocation committed
	// after that lookup's snapshot is more than RevocationDelay old.
	expires time.Time
	// unknown marks unknownToken.
	unknown bool
}

// lookup is a database read of a token in progress: the cache's epoch and
// the time when it began.
type lookup struct {
	epoch uint64
	began time.Time
}

// get returns the token with public id when the cache is live and holds it
// unexpired.
func (c *cache) get(id string, now time.Time) (cachedToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.entries[id]
	return t, ok && c.live && now.Before(t.expires)
}

// begin returns the lookup to hand put after reading the database.
func (c *cache) begin() lookup {
	c.mu.Lock()
	defer c.mu.Unlock()
	return lookup{epoch: c.epoch, began: time.Now()}
}

// put remembers t under id until RevocationDelay after l began, unless the
// cache was reset since: the lookup may then have read what the reset
// announced changed.
func (c *cache) put(l lookup, id string, t cachedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live && c.epoch == l.epoch {
		t.expires = l.began.Add(RevocationDelay)
		if c.entries == nil {
			c.entries = map[string]cachedToken{}
		}
		c.entries[id] = t
	}
}

// isUnknown reports whether the cache is live and knows, unexpired, that
// no active token has public id.
func (c *cache) isUnknown(id string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	expires, ok := c.unknown[id]
	return ok && c.live && now.Before(expires)
}

// putUnknown remembers that no active token has public id until
// RevocationDelay after l began (so a token created while a notification
// was lost is still accepted within that bound), unless the cache was reset
// since.
func (c *cache) putUnknown(l lookup, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || c.epoch != l.epoch {
		return
	}
	if c.unknown == nil || len(c.unknown) >= maxUnknown {
		c.unknown = map[string]time.Time{}
	}
	c.unknown[id] = l.began.Add(RevocationDelay)
}

// reset forgets every token; live says whether lookups may fill the cache
// again.
func (c *cache) reset(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
	c.epoch++
	clear(c.entries)
	c.unknown = nil
}

// Watch lets Authenticate answer from memory until ctx ends. It listens on
// a connection of its own for PostgreSQL's notification of any change to
// api_tokens, and forgets every remembered token when one arrives, so a
// revocation (by `valhalla tokens revoke`, another server or plain SQL)
// takes effect as soon as PostgreSQL delivers the notification, within
// milliseconds of its commit, and in any case within RevocationDelay.
// While the connection is down, Authenticate reads the database on every
// request, as it does without Watch: a token is then refused at once, and
// with the database unreachable every authenticated request is answered
// database.ErrUnavailable, since no revocation could be heard. Watch logs
// to logger and returns when ctx ends.
func (s *Store) Watch(ctx context.Context, logger *slog.Logger) {
	for {
		err := s.listen(ctx)
		s.cache.reset(false)
		if ctx.Err() != nil {
			return
		}
		logger.Warn("token cache off until the notification connection is back: every request reads api_tokens", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.watchRetry):
		}
	}
}

// listen connects, listens on changesChannel and resets the cache on every
// notification, until the connection fails or ctx ends.
func (s *Store) listen(ctx context.Context) error {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.Tracer = nil // a span for each wait would only be noise
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+changesChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.cache.reset(true)
	for {
		wait, cancel := context.WithTimeout(ctx, watchPing)
		_, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case err == nil:
			s.cache.reset(true)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// Quiet for a while: make sure the connection still is one, since
			// a dead one would never deliver the next revocation.
			ping, cancel := context.WithTimeout(ctx, watchPing)
			err := conn.Ping(ping)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		default:
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}
