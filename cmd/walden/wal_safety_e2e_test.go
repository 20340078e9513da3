package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
	"github.com/walden-pg/walden/wal"
)

// TestRecoveryStopsAtABrokenArchiveInsteadOfPromoting archives a real
// PostgreSQL 15 through walden, takes a base copy, adds load, then breaks
// one segment after the copy's consistency point (removed; truncated;
// replaced by another segment's WAL) and recovers through walden's
// restore_command. A broken archive must stop recovery with FATAL, naming
// the segment, never end it early and promote with the rest of the WAL lost.
func TestRecoveryStopsAtABrokenArchiveInsteadOfPromoting(t *testing.T) {
	bin := pgtest.BuildWalden(t)
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
		"archive_command": pgtest.Quote(fmt.Sprintf("%s --envdir %s wal-push %%p", bin, env)),
	})
	primary.Start(t)
	primary.Psql(t, "create table marker(id int primary key, note text)")
	primary.Psql(t, "insert into marker values (0, 'before-base')")
	base := filepath.Join(primary.MkDir(t, "copies"), "base")
	primary.BaseCopy(t, base)
	label, err := os.ReadFile(filepath.Join(base, "backup_label"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)`).FindSubmatch(label)
	if m == nil {
		t.Fatalf("backup_label: %s", label)
	}
	start, _ := wal.ParseSegment(string(m[1]))
	for i := 1; i <= 8; i++ {
		primary.Psql(t, fmt.Sprintf("insert into marker select %d*1000+g, 'after' from generate_series(1, 500) g", i))
		primary.Psql(t, "select pg_switch_wal()")
	}
	last := primary.Psql(t, "select pg_walfile_name(pg_current_wal_lsn())")
	primary.Psql(t, "select pg_switch_wal()")
	primary.WaitArchived(t, last, 3*time.Minute)
	primary.Stop(t)

	// Four segments after the copy began: past its consistency point, with
	// more WAL stored after it.
	victim := start
	for i := 0; i < 4; i++ {
		victim = victim.Next()
	}
	name := victim.String()
	obj := func(dir, seg string) string { return filepath.Join(dir, "wal_005", seg+".lz4") }
	if _, err := os.Stat(obj(store, victim.Next().String())); err != nil {
		t.Fatalf("the archive should hold segments after %s: %v", name, err)
	}
	// The archive was written a while ago: a missing segment is a gap, not
	// an upload still in flight.
	old := time.Now().Add(-time.Hour)
	filepath.WalkDir(store, func(p string, _ os.DirEntry, _ error) error { return os.Chtimes(p, old, old) })

	for _, tc := range []struct {
		what   string
		mutate func(t *testing.T, st string)
		says   string
	}{
		{"missing", func(t *testing.T, st string) { os.Remove(obj(st, name)) },
			"WAL segment " + name + " is missing from the archive"},
		{"truncated", func(t *testing.T, st string) {
			b, _ := os.ReadFile(obj(st, name))
			os.WriteFile(obj(st, name), b[:len(b)/2], 0o644)
		}, name},
		{"another segment", func(t *testing.T, st string) {
			b, _ := os.ReadFile(obj(st, victim.Next().String()))
			os.WriteFile(obj(st, name), b, 0o644)
		}, name + " is not a valid WAL segment"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			st := primary.MkDir(t, "store-"+strings.ReplaceAll(tc.what, " ", "-"))
			bbCopyTree(t, store, st)
			tc.mutate(t, st)
			renv := filepath.Join(st + "-env")
			writeEnvdir(t, renv, map[string]string{
				"WALE_FILE_PREFIX":     "file://localhost" + st,
				"WALE_LOG_DESTINATION": "stderr",
			})
			replica := pgtest.New(t, pgtest.Options{NoInit: true})
			os.Remove(replica.Dir)
			bbCopyTree(t, base, replica.Dir)
			os.Chmod(replica.Dir, 0o700)
			os.WriteFile(filepath.Join(replica.Dir, "recovery.signal"), nil, 0o600)
			replica.WriteConf(t, map[string]string{
				"archive_mode":             "off",
				"restore_command":          pgtest.Quote(fmt.Sprintf(`%s --envdir %s wal-fetch -p 2 "%%f" "%%p"`, bin, renv)),
				"recovery_target_action":   "promote",
				"recovery_target_timeline": "latest",
			})
			pgtest.Chown(t, replica.Dir)
			o := fmt.Sprintf("-p %d -k %s -c listen_addresses=''", replica.Port, replica.SocketDir)
			if out, err := pgtest.RunAs(t, replica.Env(), "", filepath.Join(replica.BinDir, "pg_ctl"),
				"-D", replica.Dir, "-l", replica.LogFile, "-W", "-o", o, "start"); err != nil {
				t.Fatalf("pg_ctl start: %v %s", err, out)
			}
			// The server must stop by itself: FATAL in the startup process.
			deadline := time.Now().Add(3 * time.Minute)
			for {
				if _, err := os.Stat(filepath.Join(replica.Dir, "postmaster.pid")); os.IsNotExist(err) && strings.Contains(replica.LogContents(), "database system is shut down") {
					break
				}
				for _, never := range []string{"archive recovery complete", "selected new timeline ID", "database system is ready to accept connections"} {
					if log := replica.LogContents(); strings.Contains(log, never) {
						t.Fatalf("recovery ended early at the broken segment %s (%q):\n%s", name, never, tail(log, 40))
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("the server kept running; log:\n%s", tail(replica.LogContents(), 40))
				}
				time.Sleep(200 * time.Millisecond)
			}
			log := replica.LogContents()
			for _, want := range []string{
				`FATAL:  could not restore file "` + name + `" from archive: child process exited with exit code 200`,
				tc.says,
			} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, tail(log, 40))
				}
			}
			for _, never := range []string{"archive recovery complete", "selected new timeline ID", "database system is ready to accept connections"} {
				if strings.Contains(log, never) {
					t.Errorf("recovery ended early (%q):\n%s", never, tail(log, 40))
				}
			}
		})
	}
}

var _ = exec.Command
