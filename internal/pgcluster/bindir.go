package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrBinariesNotFound reports that the PostgreSQL server binaries (initdb,
// pg_ctl and postgres) could not be found on this machine.
var ErrBinariesNotFound = errors.New("no PostgreSQL server binaries (initdb, pg_ctl, postgres) found")

// serverBinaries are the programs a bin dir must hold to be usable.
var serverBinaries = []string{"initdb", "pg_ctl", "postgres"}

// FindBinDir locates the directory holding the PostgreSQL server binaries
// initdb, pg_ctl and postgres. It tries, in order: $PG_BINDIR, the output of
// `pg_config --bindir` (pg_config looked up on getenv("PATH")), then the usual
// install paths (/usr/lib/postgresql/<newest version>/bin, /usr/pgsql-*/bin,
// /usr/local/pgsql/bin, /opt/homebrew/bin, /usr/local/bin, /usr/bin), keeping
// only a directory that really contains all three programs.
//
// A nil getenv means os.Getenv. When PG_BINDIR is set but does not contain the
// binaries, or when nothing is found, FindBinDir returns an error wrapping
// ErrBinariesNotFound whose message says how to fix it.
func FindBinDir(getenv func(string) string) (string, error) {
	return findBinDir(getenv, defaultCandidates())
}

// findBinDir is FindBinDir with the list of usual install paths injected.
func findBinDir(getenv func(string) string, candidates []string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if dir := getenv("PG_BINDIR"); dir != "" {
		if hasServerBinaries(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w in PG_BINDIR=%q: point PG_BINDIR at the bin directory of a PostgreSQL server install, unset it to search the usual places, or set DATABASE_URL to use an existing server", ErrBinariesNotFound, dir)
	}
	if dir, ok := pgConfigBinDir(getenv("PATH")); ok && hasServerBinaries(dir) {
		return dir, nil
	}
	for _, dir := range candidates {
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: install the PostgreSQL server package (e.g. `apt-get install postgresql` or `brew install postgresql`), or set PG_BINDIR to the directory holding initdb, or set DATABASE_URL to use an existing server", ErrBinariesNotFound)
}

// pgConfigBinDir runs the first pg_config found on path with --bindir and
// reports the directory it prints.
func pgConfigBinDir(path string) (string, bool) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		prog := filepath.Join(dir, "pg_config")
		if !isExecutable(prog) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, prog, "--bindir").Output()
		cancel()
		if err != nil {
			return "", false
		}
		bin := strings.TrimSpace(string(out))
		return bin, bin != ""
	}
	return "", false
}

// defaultCandidates lists the usual install paths, newest versions first.
func defaultCandidates() []string {
	var dirs []string
	dirs = append(dirs, newestFirst("/usr/lib/postgresql/*/bin", "/usr/lib/postgresql/")...)
	dirs = append(dirs, newestFirst("/usr/pgsql-*/bin", "/usr/pgsql-")...)
	return append(dirs,
		"/usr/local/pgsql/bin",
		"/opt/homebrew/bin",
		"/usr/local/bin",
		"/usr/bin",
	)
}

// newestFirst globs pattern and sorts the matches by the version number that
// follows prefix, highest first.
func newestFirst(pattern, prefix string) []string {
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return nil
	}
	version := func(p string) float64 {
		v := strings.TrimPrefix(p, prefix)
		v, _, _ = strings.Cut(v, "/")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return -1
		}
		return f
	}
	sort.SliceStable(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	return matches
}

// hasServerBinaries reports whether dir holds initdb, pg_ctl and postgres.
func hasServerBinaries(dir string) bool {
	for _, name := range serverBinaries {
		if !isExecutable(filepath.Join(dir, name)) {
			return false
		}
	}
	return true
}

// isExecutable reports whether path is a regular file with an execute bit.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
