package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/walden-pg/walden/internal/pgtest"
)

// rgArchiveWithSegments is an archive holding one backup and, after it,
// several full-ish segments of timeline 1 each ending with a marker row.
// It returns the envdir, the store, and the archived segments of
// timeline 1 that begin after the backup's start, in order.
func rgArchiveWithSegments(t *testing.T, bin string) (c *pgtest.Cluster, envdir, store string, segs []string) {
	t.Helper()
	c, envdir, store = bbArchivingCluster(t, bin, 1, nil)
	r := bbMust(t, bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir), "backup-push")
	m := bbBackupNameRe.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no backup name:\n%s", r.stderr)
	}
	startSeg := m[1][5:29]
	for i := 1; i <= 6; i++ {
		c.Pgbench(t, "-n", "-c", "1", "-t", "150")
		c.Psql(t, fmt.Sprintf("insert into marker values (%d, 'seg-%d')", i, i))
		c.Psql(t, "select pg_switch_wal()")
	}
	bbArchiveAll(t, c)
	all, _ := filepath.Glob(filepath.Join(store, "wal_005", "00000001*.lz4"))
	sort.Strings(all)
	for _, p := range all {
		if name := strings.TrimSuffix(filepath.Base(p), ".lz4"); len(name) == 24 && name > startSeg {
			segs = append(segs, name)
		}
	}
	if len(segs) < 6 {
		t.Fatalf("only %d segments after the backup: %v", len(segs), segs)
	}
	return c, envdir, store, segs
}

// rgArchivingTarget is an empty data directory whose configuration, like a
// primary's restored as is, archives with walden into the same store.
func rgArchivingTarget(t *testing.T, bin, envdir string) *pgtest.Cluster {
	t.Helper()
	r := bbRestoreTarget(t)
	r.WriteConf(t, map[string]string{
		"archive_mode":    "on",
		"archive_command": pgtest.Quote(bin + " --envdir " + envdir + " wal-push %p"),
	})
	return r
}

// rgCheckRefused asserts a failed restore: non-zero exit, the segment
// named, the server stopped with archiving off, and nothing of a new
// timeline in the store.
func rgCheckRefused(t *testing.T, r bbResult, target *pgtest.Cluster, store, seg string) {
	t.Helper()
	if r.code == 0 || strings.Contains(r.stderr, "MSG: recovery complete") {
		t.Fatalf("restore across damaged WAL succeeded (exit %d):\n%s", r.code, bbTail(r.stderr, 3000))
	}
	if !strings.Contains(r.stderr, seg) {
		t.Errorf("the error does not name segment %s:\n%s", seg, bbTail(r.stderr, 3000))
	}
	if _, err := os.Stat(filepath.Join(target.Dir, "postmaster.pid")); err == nil {
		t.Errorf("the promoted server is still running")
	}
	if h, _ := filepath.Glob(filepath.Join(store, "wal_005", "00000002*")); len(h) > 0 {
		t.Errorf("the failed restore archived a new timeline into the store: %v", h)
	}
}

// TestRestoreRefusesToEndAtAMissingSegment removes one segment in the
// middle of the archive: PostgreSQL would promote at the gap, so walden
// restore must fail naming the segment, and the new timeline must not
// reach the store.
func TestRestoreRefusesToEndAtAMissingSegment(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	_, envdir, store, segs := rgArchiveWithSegments(t, bin)
	gone := segs[2]
	if err := os.Remove(filepath.Join(store, "wal_005", gone+".lz4")); err != nil {
		t.Fatal(err)
	}
	target := rgArchivingTarget(t, bin, envdir)
	r := bbWalden(t, bin, envdir, nil, "restore", target.Dir, "--start")
	rgCheckRefused(t, r, target, store, gone)
}

// TestRestoreRefusesToEndAtACorruptSegment damages the records (not the
// page headers or the compression) of one segment in the middle of the
// archive: replay stops there with a checksum error and PostgreSQL
// promotes; walden restore must notice that later WAL exists and fail.
func TestRestoreRefusesToEndAtACorruptSegment(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	_, envdir, store, segs := rgArchiveWithSegments(t, bin)
	bad := segs[2]
	obj := filepath.Join(store, "wal_005", bad+".lz4")
	raw := filepath.Join(t.TempDir(), bad)
	if out, err := exec.Command("lz4", "-d", "-f", "-q", obj, raw).CombinedOutput(); err != nil {
		t.Fatalf("lz4 -d: %v %s", err, out)
	}
	b, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2*8192 + 300; i < 2*8192+340; i++ {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(raw, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("lz4", "-f", "-q", raw, obj).CombinedOutput(); err != nil {
		t.Fatalf("lz4: %v %s", err, out)
	}
	pgtest.Chown(t, obj)
	target := rgArchivingTarget(t, bin, envdir)
	r := bbWalden(t, bin, envdir, nil, "restore", target.Dir, "--start")
	rgCheckRefused(t, r, target, store, bad)
	auto, _ := os.ReadFile(filepath.Join(target.Dir, "postgresql.auto.conf"))
	if !strings.Contains(string(auto), "archive_mode = 'off'") {
		t.Errorf("the failed restore left archiving on:\n%s", auto)
	}
}
