package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
)

// bwStoreEnv is a fresh file store and an envdir pointing at it.
func bwStoreEnv(t *testing.T, dir, name string, extra map[string]string) (envdir, store string) {
	t.Helper()
	store = filepath.Join(dir, name+"-store")
	os.Mkdir(store, 0o755)
	pgtest.Chown(t, store)
	envdir = filepath.Join(dir, name+"-env")
	vars := map[string]string{"WALE_FILE_PREFIX": "file://localhost" + store, "WALE_LOG_DESTINATION": "stderr"}
	for k, v := range extra {
		vars[k] = v
	}
	bbEnvdir(t, envdir, vars)
	return envdir, store
}

// bwNoSentinel fails the test if the store holds any backup sentinel.
func bwNoSentinel(t *testing.T, store string) {
	t.Helper()
	if s, _ := filepath.Glob(filepath.Join(store, "basebackups_005", "*_backup_stop_sentinel.json")); len(s) > 0 {
		t.Errorf("a backup that cannot be restored got a sentinel: %v", s)
	}
}

// TestBackupPushRefusesWhenItsWALDoesNotReachTheStore: with archive_mode
// off the push fails at once; with an archive_command that archives into
// another store it fails after WALDEN_BACKUP_WAL_TIMEOUT. Neither leaves
// a sentinel, and backup-list shows nothing.
func TestBackupPushRefusesWhenItsWALDoesNotReachTheStore(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	dir := bbScratch(t)
	envdir, store := bwStoreEnv(t, dir, "main", map[string]string{"WALDEN_BACKUP_WAL_TIMEOUT": "3s"})
	otherEnv, _ := bwStoreEnv(t, dir, "other", nil)

	t.Run("archive_mode off", func(t *testing.T) {
		c := pgtest.New(t, pgtest.Options{Conf: map[string]string{"wal_level": "replica", "archive_mode": "off"}})
		c.Start(t)
		start := time.Now()
		r := bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir)
		if r.code == 0 || !strings.Contains(r.stderr, "archive_mode is off") {
			t.Fatalf("exit %d:\n%s", r.code, bbTail(r.stderr, 2000))
		}
		if strings.Contains(r.stderr, "begin uploading a base backup volume") || time.Since(start) > 20*time.Second {
			t.Errorf("did not fail fast")
		}
		bwNoSentinel(t, store)
	})

	t.Run("archive_command into another store", func(t *testing.T) {
		c := pgtest.New(t, pgtest.Options{Conf: map[string]string{
			"wal_level": "replica", "archive_mode": "on",
			"archive_command": pgtest.Quote(bin + " --envdir " + otherEnv + " wal-push %p"),
		}})
		c.Start(t)
		r := bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir)
		if r.code == 0 || strings.Contains(r.stderr, "base backup complete") || !strings.Contains(r.stderr, "the WAL this backup needs is not in the store") {
			t.Fatalf("exit %d:\n%s", r.code, bbTail(r.stderr, 2000))
		}
		bwNoSentinel(t, store)
		list := bbMust(t, bbWalden(t, bin, envdir, nil, "backup-list"), "backup-list")
		if strings.Count(list.stdout, "\n") != 1 {
			t.Errorf("backup-list lists the failed backup:\n%s", list.stdout)
		}
	})
}
