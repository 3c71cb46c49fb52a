package follow

// Attached counts the streams in the fan-out.
func (h *Hub) Attached() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
