package auth

import "time"

// SetWatchRetry sets the pause before Watch reconnects, for tests.
func (s *Store) SetWatchRetry(d time.Duration) { s.watchRetry = d }
