package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
)

// bbFixture is what the tests read from EXPECTED.json.
type bbFixture struct {
	Queries map[string]string `json:"queries"`
	Targets []struct {
		ID               string            `json:"id"`
		BackupFetch      string            `json:"backup_fetch"`
		RecoverySettings map[string]string `json:"recovery_settings"`
		Expected         map[string]string `json:"expected"`
	} `json:"targets"`
	Times struct {
		BetweenM2AndM3 string `json:"between_m2_and_m3"`
	} `json:"times"`
}

const bbFixtureDir = "../../testdata/fixtures/wal-e/basic"

func bbLoadFixture(t *testing.T) bbFixture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(bbFixtureDir, "EXPECTED.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f bbFixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Targets) != 7 {
		t.Fatalf("EXPECTED.json has %d targets", len(f.Targets))
	}
	return f
}

// bbFixtureArchive copies the WAL-E store where postgres can read it and
// writes an envdir pointing at it.
func bbFixtureArchive(t *testing.T) (envdir string) {
	t.Helper()
	dir := bbScratch(t)
	store := filepath.Join(dir, "store")
	src, _ := filepath.Abs(filepath.Join(bbFixtureDir, "store"))
	bbCopyTree(t, src, store)
	// A checkout does not keep file times: give the sentinel the one WAL-E
	// gave it, which backup-list prints.
	mt := time.Date(2026, 11, 24, 5, 48, 5, 517437000, time.UTC)
	if err := os.Chtimes(filepath.Join(store, "basebackups_005", "base_000000010000000000000040_00000040_backup_stop_sentinel.json"), mt, mt); err != nil {
		t.Fatal(err)
	}
	envdir = filepath.Join(dir, "env")
	bbEnvdir(t, envdir, map[string]string{"WALE_FILE_PREFIX": "file://localhost" + store, "WALE_LOG_DESTINATION": "stderr"})
	return envdir
}

// bbCheckAnswers runs the fixture's queries and compares them exactly.
func bbCheckAnswers(t *testing.T, c *pgtest.Cluster, f bbFixture, expected map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(expected))
	for k := range expected {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got := c.Psql(t, f.Queries[k]); got != expected[k] {
			t.Errorf("%s: %q, want %q", k, got, expected[k])
		}
	}
}

// TestWALEFixtureEveryTargetRestores restores every recovery target of the
// real WAL-E archive with walden backup-fetch and walden wal-fetch, exactly
// as the fixture's README did with WAL-E, and compares every answer.
func TestWALEFixtureEveryTargetRestores(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	f := bbLoadFixture(t)
	envdir := bbFixtureArchive(t)
	for _, tg := range f.Targets {
		t.Run(tg.ID, func(t *testing.T) {
			conf := map[string]string{
				"archive_mode":    "off",
				"hot_standby":     "on",
				"restore_command": pgtest.Quote(bbRestoreCommand(bin, envdir, 4)),
			}
			for k, v := range tg.RecoverySettings {
				conf[k] = pgtest.Quote(v)
			}
			c := pgtest.New(t, pgtest.Options{NoInit: true, Conf: conf})
			bbMust(t, bbWalden(t, bin, envdir, nil, "backup-fetch", c.Dir, tg.BackupFetch), "backup-fetch")
			if _, err := os.Stat(filepath.Join(c.Dir, "global", "pg_control")); err != nil {
				t.Fatal("no pg_control after backup-fetch")
			}
			bbWriteFile(t, filepath.Join(c.Dir, "pg_hba.conf"), "local all all trust\n")
			bbWriteFile(t, filepath.Join(c.Dir, "pg_ident.conf"), "")
			bbWriteFile(t, filepath.Join(c.Dir, "recovery.signal"), "")
			c.Start(t)
			c.WaitRecoveryDone(t, 90*time.Second)
			bbCheckAnswers(t, c, f, tg.Expected)
		})
	}
}

// TestFixtureBackupListAndDetail pins backup-list's bytes on WAL-E's own
// archive, including --detail on the file backend.
func TestFixtureBackupListAndDetail(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	envdir := bbFixtureArchive(t)
	const header = "name\tlast_modified\texpanded_size_bytes\twal_segment_backup_start\twal_segment_offset_backup_start\twal_segment_backup_stop\twal_segment_offset_backup_stop\r\n"
	r := bbMust(t, bbWalden(t, bin, envdir, nil, "backup-list"), "backup-list")
	want := header + "base_000000010000000000000040_00000040\t2026-11-24T05:48:05.517437\t\t000000010000000000000040\t00000040\t\t\r\n"
	if r.stdout != want {
		t.Errorf("backup-list:\n%q\nwant\n%q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, `The subcommand is "backup-list".`) {
		t.Errorf("no start line: %s", r.stderr)
	}
	r = bbMust(t, bbWalden(t, bin, envdir, nil, "backup-list", "--detail", "LATEST"), "backup-list --detail")
	want = header + "base_000000010000000000000040_00000040\t2026-11-24T05:48:05.517437\t39241502\t000000010000000000000040\t00000040\t000000010000000000000040\t00000040\r\n"
	if r.stdout != want {
		t.Errorf("backup-list --detail:\n%q\nwant\n%q", r.stdout, want)
	}
	r = bbWalden(t, bin, envdir, nil, "backup-list", "yesterday")
	if r.code != 1 || r.stdout != header || !strings.Contains(r.stderr, "MSG: invalid backup query submitted\n        DETAIL: The submitted query operator was \"yesterday.\"") {
		t.Errorf("invalid query: exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
}
