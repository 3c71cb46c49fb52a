package pgcluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// removeZombieLockFile removes postmaster.pid when the postmaster it names is
// a zombie: killed, but never reaped because its parent (PID 1 in many
// containers) does not reap orphans. pg_ctl and postgres see a zombie as a
// live server, so without this a crashed cluster could never start again.
func (c *Cluster) removeZombieLockFile() error {
	path := filepath.Join(c.dataDir, "postmaster.pid")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read postmaster.pid: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 || !isZombie(pid) {
		return nil
	}
	c.logger.Info("removing postmaster.pid of a dead PostgreSQL", "data_dir", c.dataDir, "pid", pid)
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale postmaster.pid: %w", err)
	}
	return nil
}

// isZombie reports whether process pid has exited but not been reaped. It
// reads /proc, so it is always false where there is none.
func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The format is "pid (comm) state ..."; comm may itself contain ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}
