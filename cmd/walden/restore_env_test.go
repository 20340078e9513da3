package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/walden-pg/walden/internal/pgtest"
)

// TestRestoreUnderEnvdirWritesASettingsSnapshotForRestoreCommand runs
// `envdir DIR /path/wal-e restore --start --no-archive`, the WAL-E
// runbook's form: the settings exist only in walden's environment, so
// restore_command must read them from a private snapshot envdir (never
// from postgresql.auto.conf), call the program by the path used, and the
// server must replay the archive to its end with archiving off.
func TestRestoreUnderEnvdirWritesASettingsSnapshotForRestoreCommand(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	f := bbLoadFixture(t)
	envdir := bbFixtureArchive(t)
	const secret = "s3cr3t-never-in-auto-conf"
	bbEnvdir(t, envdir, map[string]string{"AWS_SECRET_ACCESS_KEY": secret})
	dir := bbScratch(t)
	walE := filepath.Join(dir, "wal-e")
	if err := os.Symlink(bin, walE); err != nil {
		t.Fatal(err)
	}
	var latest map[string]string
	for _, tg := range f.Targets {
		if tg.ID == "latest" {
			latest = tg.Expected
		}
	}

	c := rgArchivingTarget(t, bin, envdir)
	r := bbMust(t, bbExec(t, pgtest.Command(t, nil, "", "envdir", envdir, walE, "restore", c.Dir, "--start", "--no-archive")), "envdir ... wal-e restore")
	if !strings.Contains(r.stderr, "the restored server will not archive") {
		t.Errorf("no --no-archive notice:\n%s", bbTail(r.stderr, 2000))
	}
	bbCheckAnswers(t, c, f, latest)
	if got := c.Psql(t, "show archive_mode"); got != "off" {
		t.Errorf("archive_mode = %s after --no-archive", got)
	}
	auto, _ := os.ReadFile(filepath.Join(c.Dir, "postgresql.auto.conf"))
	m := regexp.MustCompile(`restore_command reads them from (\S+) \(mode 0700`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no snapshot line:\n%s", bbTail(r.stderr, 3000))
	}
	snap := m[1]
	t.Cleanup(func() { os.RemoveAll(snap) })
	if strings.HasPrefix(snap, c.Dir+"/") {
		t.Errorf("snapshot %s inside the data directory", snap)
	}
	want := "restore_command = '" + walE + " --envdir " + snap + ` wal-fetch -p 8 "%f" "%p"'`
	if !strings.Contains(string(auto), want) {
		t.Errorf("postgresql.auto.conf lacks %s:\n%s", want, auto)
	}
	if strings.Contains(string(auto), secret) {
		t.Fatal("a secret was written into postgresql.auto.conf")
	}
	fi, err := os.Stat(snap)
	if err != nil || fi.Mode().Perm() != 0o700 || !bbOwnedByPostgres(fi) {
		t.Fatalf("snapshot envdir %s: %v %v", snap, fi, err)
	}
	kf, err := os.Stat(filepath.Join(snap, "AWS_SECRET_ACCESS_KEY"))
	if err != nil || kf.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot secret file: %v %v", kf, err)
	}
	if st, ok := kf.Sys().(*syscall.Stat_t); !ok || st.Nlink != 1 {
		t.Errorf("odd snapshot file")
	}

	// Without --no-archive walden says, before fetching anything, that
	// the restored server will archive into the same prefix.
	c2 := bbRestoreTarget(t)
	r2 := bbMust(t, bbWalden(t, bin, envdir, nil, "restore", c2.Dir), "restore without --start")
	warn := strings.Index(r2.stderr, "the restored server will archive into the same prefix")
	if warn < 0 || warn > strings.Index(r2.stderr, "MSG: restoring base backup") {
		t.Errorf("no archiving warning before the restore began:\n%s", bbTail(r2.stderr, 2000))
	}
}
