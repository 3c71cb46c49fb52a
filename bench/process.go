package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds how long a server process may take to listen.
const startTimeout = 2 * time.Minute

// process is a server under test running as its own OS process, so that
// its memory and CPU are its own.
type process struct {
	name string
	cmd  *exec.Cmd
	// Addr is the host:port it listens on.
	Addr string
	done chan error

	stopOnce sync.Once
	stopErr  error
}

// startProcess runs path with args, writing its output to logPath, and
// waits for the JSON log line {"msg":"listening","addr":...} that both
// valhalla serve and the HTTP floor print. It returns an error if the
// process exits or does not listen in time.
func startProcess(ctx context.Context, name, path string, args []string, env []string, logPath string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan error, 1)}
	listening := make(chan string, 1)
	go func() {
		// Copy every line to the log, and report the listen address once.
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logFile.Write(append(line, '\n'))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
				select {
				case listening <- rec.Addr:
				default:
				}
			}
		}
		_, _ = io.Copy(logFile, stdout)
		p.done <- cmd.Wait()
		logFile.Close()
	}()
	select {
	case p.Addr = <-listening:
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("%s exited before listening (%v); see %s", name, err, logPath)
	case <-time.After(startTimeout):
	case <-ctx.Done():
	}
	_ = cmd.Process.Kill()
	<-p.done
	return nil, fmt.Errorf("%s did not listen within %s; see %s", name, startTimeout, logPath)
}

// PID is the process id.
func (p *process) PID() int { return p.cmd.Process.Pid }

// Stop asks the process to shut down (SIGTERM), waits for it, and kills it
// if it takes longer than a minute. Calling it again returns the same error.
func (p *process) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

func (p *process) stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", p.name, err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		return nil
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("stop %s: killed after a minute", p.name)
	}
}

// PeakRSS returns the process's peak resident set size (VmHWM) in bytes.
func (p *process) PeakRSS() (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		return 0, fmt.Errorf("peak RSS of %s: %w", p.name, err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS of %s: parse %q: %w", p.name, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("peak RSS of %s: no VmHWM in /proc/%d/status", p.name, p.PID())
}
