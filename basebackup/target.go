package basebackup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/walden-pg/walden/walelog"
)

// errLiveDataDir is WAL-E's refusal to restore over a running cluster.
var errLiveDataDir = &walelog.UserError{
	Msg:    "attempting to overwrite a live data directory",
	Detail: "Found a postmaster.pid lockfile, and aborting",
	Hint:   "Shut down postgres. If there is a stale lockfile, then remove it after being very sure postgres is not running.",
}

// allowedInTarget are the entries a restore target may already hold: the
// configuration a restore pipeline puts in place first (design 8.14), and
// a file system's lost+found.
var allowedInTarget = map[string]bool{
	"postgresql.conf": true, "pg_hba.conf": true, "pg_ident.conf": true,
	"recovery.conf": true, "recovery.signal": true, "standby.signal": true,
	"lost+found": true,
}

// keepConfig names the files backup-fetch never overwrites when present.
func keepConfig(rel string) bool {
	switch rel {
	case "postgresql.conf", "pg_hba.conf", "pg_ident.conf":
		return true
	}
	return false
}

// checkTarget refuses a running cluster and a directory that already holds
// a data directory. pg_tblspc holding only symlinks is allowed: WAL-E's
// runbook has the operator create tablespace links before backup-fetch.
func checkTarget(pgdata string) error {
	if _, err := os.Lstat(filepath.Join(pgdata, "postmaster.pid")); err == nil {
		return errLiveDataDir
	}
	ents, err := os.ReadDir(pgdata)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	notEmpty := func(what string) error {
		return &walelog.UserError{
			Msg:    "restore target is not empty",
			Detail: fmt.Sprintf("%s already holds %s.", pgdata, what),
			Hint:   "Restore into an empty directory, or one holding only postgresql.conf, pg_hba.conf, pg_ident.conf, recovery.conf or signal files.",
		}
	}
	for _, e := range ents {
		if e.Name() == "PG_VERSION" {
			return notEmpty("a data directory (PG_VERSION)")
		}
	}
	for _, e := range ents {
		switch {
		case allowedInTarget[e.Name()]:
		case e.Name() == "pg_tblspc" && e.IsDir():
			links, err := os.ReadDir(filepath.Join(pgdata, "pg_tblspc"))
			if err != nil {
				return err
			}
			for _, l := range links {
				if l.Type()&fs.ModeSymlink == 0 {
					return notEmpty("pg_tblspc/" + l.Name())
				}
			}
		default:
			return notEmpty(e.Name())
		}
	}
	return nil
}

// clearTarget empties pgdata for backup-fetch --force: everything goes
// except what checkTarget allows (configuration, signal files, tablespace
// symlinks in pg_tblspc). Files under the tablespace links are left and
// overwritten by the restore. A running cluster is refused.
func clearTarget(pgdata string) error {
	if _, err := os.Lstat(filepath.Join(pgdata, "postmaster.pid")); err == nil {
		return errLiveDataDir
	}
	ents, err := os.ReadDir(pgdata)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(pgdata, e.Name())
		switch {
		case allowedInTarget[e.Name()]:
		case e.Name() == "pg_tblspc" && e.IsDir():
			links, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			for _, l := range links {
				if l.Type()&fs.ModeSymlink == 0 {
					if err := os.RemoveAll(filepath.Join(p, l.Name())); err != nil {
						return err
					}
				}
			}
		default:
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	return nil
}
