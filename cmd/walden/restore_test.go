package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/walden-pg/walden/internal/pgtest"
)

// bbRestoreTarget makes an empty data directory holding only the
// postgresql.conf that puts the server on the cluster's private socket.
func bbRestoreTarget(t *testing.T) *pgtest.Cluster {
	t.Helper()
	c := pgtest.New(t, pgtest.Options{NoInit: true})
	c.WriteConf(t, map[string]string{
		"listen_addresses":        pgtest.Quote(""),
		"unix_socket_directories": pgtest.Quote(c.SocketDir),
		"port":                    strconv.Itoa(c.Port),
		"archive_mode":            "off",
	})
	return c
}

// TestRestoreCommandReachesTimeAndLatestOnWALEArchive is the one-command
// point-in-time restore on WAL-E's archive: walden picks the backup,
// fetches it, writes the configuration WAL-E's backup lacks and the
// recovery settings, starts PostgreSQL and waits for the promotion.
func TestRestoreCommandReachesTimeAndLatestOnWALEArchive(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	f := bbLoadFixture(t)
	envdir := bbFixtureArchive(t)
	expect := map[string]map[string]string{}
	for _, tg := range f.Targets {
		expect[tg.ID] = tg.Expected
	}

	t.Run("target-time as root", func(t *testing.T) {
		c := bbRestoreTarget(t)
		r := bbMust(t, bbWaldenAsRoot(t, bin, envdir, "restore", c.Dir, "--target-time", f.Times.BetweenM2AndM3, "--start"), "restore")
		for _, want := range []string{"MSG: recovery complete", "MSG: wrote minimal configuration", "base_000000010000000000000040_00000040"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("log lacks %q:\n%s", want, bbTail(r.stderr, 3000))
			}
		}
		bbCheckAnswers(t, c, f, expect["time-between-m2-m3"])
		auto, _ := os.ReadFile(filepath.Join(c.Dir, "postgresql.auto.conf"))
		for _, want := range []string{"restore_command = '" + bin + " --envdir " + envdir + ` wal-fetch -p 8 "%f" "%p"'`,
			"recovery_target_time = '2026-11-24 05:48:16.946168+00'", "recovery_target_action = 'promote'"} {
			if !strings.Contains(string(auto), want) {
				t.Errorf("postgresql.auto.conf lacks %s:\n%s", want, auto)
			}
		}
		fi, err := os.Stat(filepath.Join(c.Dir, "PG_VERSION"))
		if err != nil || !bbOwnedByPostgres(fi) {
			t.Errorf("restored files are not owned by the data directory's owner")
		}
	})

	t.Run("latest as postgres", func(t *testing.T) {
		c := bbRestoreTarget(t)
		bbMust(t, bbWalden(t, bin, envdir, nil, "restore", c.Dir, "--backup", "LATEST", "--start"), "restore")
		bbCheckAnswers(t, c, f, expect["latest"])
	})

	t.Run("target before every backup", func(t *testing.T) {
		c := bbRestoreTarget(t)
		r := bbWalden(t, bin, envdir, nil, "restore", c.Dir, "--target-time", "2026-11-24 05:00:00+00")
		if r.code != 1 || !strings.Contains(r.stderr, "no backup can reach the recovery target") {
			t.Fatalf("exit %d:\n%s", r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(c.Dir, "PG_VERSION")); err == nil {
			t.Fatal("restored anyway")
		}
	})

	t.Run("two targets is a usage error", func(t *testing.T) {
		r := bbWalden(t, bin, envdir, nil, "restore", "/nonexistent", "--target-xid", "5", "--immediate")
		if r.code != 2 || !strings.Contains(r.stderr, "at most one of") {
			t.Fatalf("exit %d:\n%s", r.code, r.stderr)
		}
	})
}
