package follow

// Attached counts the streams in the fan-out.
func (h *Hub) Attached() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Position is the last seq the poller has dispatched or passed.
func (h *Hub) Position() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pos
}
