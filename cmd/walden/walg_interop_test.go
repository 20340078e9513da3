package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
)

// walgBinary finds the WAL-G build kept beside the repository
// (shared/anchors/wal-g/wal-g next to the checkout), or $WALDEN_WALG_BIN.
// It is the operators' escape hatch, so its absence fails the test.
func walgBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WALDEN_WALG_BIN"); p != "" {
		return p
	}
	p, err := filepath.Abs("../../../shared/anchors/wal-g/wal-g")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("WAL-G binary not found at %s (set WALDEN_WALG_BIN): %v", p, err)
	}
	return p
}

// walgRestore fetches name with WAL-G's backup-fetch and replays the archive
// to its end through WAL-G's wal-fetch, using nothing of walden.
func walgRestore(t *testing.T, walg, store, name string) *pgtest.Cluster {
	t.Helper()
	env := []string{"WALG_FILE_PREFIX=" + store, "WALG_DOWNLOAD_CONCURRENCY=2"}
	r := pgtest.New(t, pgtest.Options{NoInit: true, Conf: map[string]string{
		"archive_mode":             "off",
		"restore_command":          pgtest.Quote("env WALG_FILE_PREFIX=" + store + " " + walg + ` wal-fetch "%f" "%p"`),
		"recovery_target_timeline": pgtest.Quote("latest"),
	}})
	// timeout(1) turns a hang into a failure with WAL-G's own log.
	res := bbExec(t, pgtest.Command(t, env, "/", "timeout", "-k", "10", "180", walg, "backup-fetch", r.Dir, name))
	if res.code != 0 && os.Getenv("WALDEN_WALG_KEEP") != "" {
		exec.Command("cp", "-a", store, os.Getenv("WALDEN_WALG_KEEP")).Run()
	}
	bbMust(t, res, "wal-g backup-fetch "+name)
	bbWriteFile(t, filepath.Join(r.Dir, "recovery.signal"), "")
	r.Start(t)
	r.WaitRecoveryDone(t, 120*time.Second)
	return r
}

// TestWALGRestoresWaldenBackupsAndWALInLZ4AndLZO pins the escape hatch:
// backups and WAL that walden writes, in lz4 and in lzo, restore with WAL-G
// alone to exactly the primary's data at the end of the archive.
func TestWALGRestoresWaldenBackupsAndWALInLZ4AndLZO(t *testing.T) {
	walg := walgBinary(t)
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 3, map[string]string{"WALDEN_COMPRESSION": "lz4"})

	lz4Backup := bbPushUnderLoad(t, c, bin, envdir)
	c.Psql(t, "insert into marker values (1, 'after-lz4-backup')")
	bbEnvdir(t, envdir, map[string]string{"WALDEN_COMPRESSION": "lzo"})
	c.Psql(t, "select pg_switch_wal()")
	lzoBackup := bbPushUnderLoad(t, c, bin, envdir)
	c.Psql(t, "insert into marker values (2, 'after-lzo-backup')")
	bbArchiveAll(t, c)
	want := bbStateOf(t, c)

	for _, name := range []string{lz4Backup, "LATEST"} {
		r := walgRestore(t, walg, store, name)
		if got := bbStateOf(t, r); got != want {
			t.Errorf("WAL-G restore of %s: got %+v, want %+v", name, got, want)
		}
		r.Stop(t)
	}
	if lzoBackup == lz4Backup {
		t.Fatalf("the two backups share a name: %s", lzoBackup)
	}
}
