package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
)

// writeEnvdir writes a daemontools envdir readable by postgres.
func writeEnvdir(t *testing.T, dir string, vars map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range vars {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pgtest.Chown(t, dir)
}

// TestArchiveUnderLoadAndReplayFromBaseCopy is the WAL drop-in test: a real
// PostgreSQL archives through `envdir DIR walden wal-push %p` under pgbench
// load, and a second cluster made from a pg_basebackup -X none copy taken
// before the load replays everything through walden wal-fetch -p 8.
func TestArchiveUnderLoadAndReplayFromBaseCopy(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	envdirBin, err := exec.LookPath("envdir")
	if err != nil {
		t.Fatal("envdir (daemontools) is required: apt-get install daemontools")
	}
	primary := pgtest.New(t, pgtest.Options{})
	store := primary.MkDir(t, "store")
	env := filepath.Join(primary.Base, "env")
	writeEnvdir(t, env, map[string]string{
		"WALE_FILE_PREFIX":     "file://localhost" + store,
		"WALE_LOG_DESTINATION": "stderr",
		"WALDEN_COMPRESSION":   "lz4",
	})
	primary.WriteConf(t, map[string]string{
		"archive_mode":    "on",
		"wal_level":       "replica",
		"archive_command": pgtest.Quote(fmt.Sprintf("%s %s %s wal-push %%p", envdirBin, env, bin)),
	})
	primary.Start(t)
	primary.Pgbench(t, "-i", "-s", "3", "-q")
	primary.Psql(t, "create table marker(id int primary key, note text)")
	primary.Psql(t, "insert into marker values (1, 'before-base')")

	base := filepath.Join(primary.MkDir(t, "copies"), "replica")
	primary.BaseCopy(t, base)

	primary.Pgbench(t, "-c", "2", "-j", "2", "-T", "15", "-n")
	primary.Psql(t, "insert into marker values (2, 'after-load')")
	want := map[string]string{
		"select sum(abalance) from pgbench_accounts":           "",
		"select count(*) from pgbench_history":                 "",
		"select string_agg(note, ',' order by id) from marker": "",
	}
	for q := range want {
		want[q] = primary.Psql(t, q)
	}
	last := primary.Psql(t, "select pg_walfile_name(pg_current_wal_lsn())")
	primary.Psql(t, "select pg_switch_wal()")
	primary.WaitArchived(t, last, 120*time.Second)
	if failed := primary.Psql(t, "select failed_count from pg_stat_archiver"); failed != "0" {
		t.Fatalf("failed archive attempts: %s\n%s", failed, primary.LogContents())
	}
	if !strings.Contains(primary.LogContents(), "MSG: completed archiving to a file") {
		t.Fatal("PostgreSQL's log lacks WAL-E's completed archiving lines")
	}
	primary.Stop(t)

	// The replica: the base copy, recovering through walden wal-fetch.
	replica := pgtest.New(t, pgtest.Options{NoInit: true, Conf: map[string]string{
		"archive_mode":             "off",
		"restore_command":          pgtest.Quote(fmt.Sprintf(`%s --envdir %s wal-fetch -p 8 "%%f" "%%p"`, bin, env)),
		"recovery_target_action":   "promote",
		"recovery_target_timeline": "latest",
	}})
	if err := os.Remove(replica.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(base, replica.Dir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(replica.Dir, "recovery.signal"), nil, 0o600)
	pgtest.Chown(t, replica.Dir)
	replica.Start(t)
	replica.WaitRecoveryDone(t, 3*time.Minute)
	for q, w := range want {
		if got := replica.Psql(t, q); got != w {
			t.Errorf("%s: replica %q, primary %q", q, got, w)
		}
	}
	log := replica.LogContents()
	if !strings.Contains(log, "MSG: complete wal restore") || !strings.Contains(log, "promoted prefetched wal segment") {
		t.Errorf("replica log lacks WAL-E restore lines or prefetch promotions:\n%s", tail(log, 40))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
