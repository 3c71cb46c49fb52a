package pgcluster

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// owner is the OS user that runs initdb, pg_ctl and postgres. As root that is
// the "postgres" user (initdb refuses to run as root); otherwise it is the
// current user and asRoot is false.
type owner struct {
	asRoot bool
	uid    uint32
	gid    uint32
	groups []uint32
}

// serverOwner picks the OS user to run PostgreSQL as.
func serverOwner() (owner, error) {
	if os.Geteuid() != 0 {
		return owner{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return owner{}, fmt.Errorf("running as root, PostgreSQL must run as the \"postgres\" OS user, which cannot be found (%w): create it (e.g. `useradd --system postgres`), run as a non-root user, or set DATABASE_URL to use an existing server", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return owner{}, fmt.Errorf("parse uid of postgres user: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return owner{}, fmt.Errorf("parse gid of postgres user: %w", err)
	}
	o := owner{asRoot: true, uid: uint32(uid), gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				o.groups = append(o.groups, uint32(g))
			}
		}
	}
	return o, nil
}

// credential returns the credential to run server binaries with, or nil to
// run them as the current user.
func (o owner) credential() *syscall.Credential {
	if !o.asRoot {
		return nil
	}
	return &syscall.Credential{Uid: o.uid, Gid: o.gid, Groups: o.groups}
}

// chown gives path to the server user when running as root.
func (o owner) chown(path string) error {
	if !o.asRoot {
		return nil
	}
	if err := os.Chown(path, int(o.uid), int(o.gid)); err != nil {
		return fmt.Errorf("chown %s to postgres: %w", path, err)
	}
	return nil
}

// checkTraversable returns an error naming the first of dir and its parents
// that the server user cannot search, so initdb and postgres can reach
// target, which is dir or lies below it.
func (o owner) checkTraversable(dir, target string) error {
	if !o.asRoot {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("check %s: %w", d, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && !o.canSearch(fi.Mode().Perm(), st.Uid, st.Gid) {
			return fmt.Errorf("the postgres OS user (uid %d) cannot traverse %s (mode %04o, owner uid %d), so PostgreSQL cannot reach %s: make it searchable (e.g. `chmod o+x %s`) or choose a data dir elsewhere", o.uid, d, fi.Mode().Perm(), st.Uid, target, d)
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}

// canSearch applies the Unix permission rules for search (x) permission.
func (o owner) canSearch(perm os.FileMode, fileUID, fileGID uint32) bool {
	switch {
	case fileUID == o.uid:
		return perm&0o100 != 0
	case fileGID == o.gid || slices.Contains(o.groups, fileGID):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}
