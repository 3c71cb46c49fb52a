// Package inorder reads consecutive ranges of a sequence several at a
// time and hands their results over in sequence order. The export and
// valhalla verify read the sealed trail this way: every leaf up to a
// checkpoint is sealed, so the ranges are known before any is read, and
// one read need not wait for the one before.
package inorder

import "context"

// Ranges reads (after, through] in ranges of size, calling read for each
// range (the last may be shorter), up to readers at once, and sends the
// results on the returned channel in range order. A read starts once the
// results before it are at most readers behind, so at most readers + 1
// results are held at once. The channel closes after the last result, or
// early when ctx is done (after at most one more result, and with at most
// one more read started): a caller that stops on a result cancels ctx, and
// one that reads to the end checks ctx.Err() to tell an early close from
// the end.
func Ranges[T any](ctx context.Context, after, through, size int64, readers int, read func(ctx context.Context, after, through int64) T) <-chan T {
	out := make(chan T)
	pending := make(chan chan T, max(readers-1, 0))
	go func() {
		defer close(pending)
		for from := after; from < through && ctx.Err() == nil; from += size {
			result := make(chan T, 1)
			select {
			case pending <- result:
			case <-ctx.Done():
				return
			}
			to := min(from+size, through)
			go func() { result <- read(ctx, from, to) }()
		}
	}()
	go func() {
		defer close(out)
		for result := range pending {
			var v T
			select {
			case v = <-result:
			case <-ctx.Done():
				return
			}
			if ctx.Err() != nil {
				return // done while v was read: hand over nothing more
			}
			select {
			case out <- v:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
