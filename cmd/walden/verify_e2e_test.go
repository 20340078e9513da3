package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/agent"
	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/internal/pgtest"
	"github.com/walden-pg/walden/verify"
)

// vfArchive is a store with one walden backup of a PostgreSQL 15 cluster
// that archived to it, and a few segments after the backup ends.
type vfArchive struct {
	bin, envdir, store string
	c                  *pgtest.Cluster
	rep                verify.Report
}

func vfSetup(t *testing.T) *vfArchive {
	t.Helper()
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 1, nil)
	bbArchiveAll(t, c)
	bbMust(t, bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir), "backup-push")
	last := ""
	for i := 1; i <= 4; i++ {
		c.Psql(t, fmt.Sprintf("insert into marker values (%d, 'after-backup-%d')", i, i))
		last = c.Psql(t, "select pg_walfile_name(pg_current_wal_lsn())")
		c.Psql(t, "select pg_switch_wal()")
	}
	// The segment after the last switch may stay empty: wait for the
	// last one written.
	vfWaitArchived(t, c, last)
	a := &vfArchive{bin: bin, envdir: envdir, store: store, c: c}
	r := bbMust(t, bbWaldenAsRoot(t, bin, envdir, "verify", "--json"), "verify of the clean archive")
	if err := json.Unmarshal([]byte(r.stdout), &a.rep); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, r.stdout)
	}
	if len(a.rep.Backups) != 1 || !a.rep.Backups[0].Consistent {
		t.Fatalf("clean archive: %s", r.stdout)
	}
	return a
}

// copyStore gives a test its own copy of the archive and an envdir for it.
func (a *vfArchive) copyStore(t *testing.T) (envdir, store string) {
	t.Helper()
	dir := bbScratch(t)
	store = filepath.Join(dir, "store")
	bbCopyTree(t, a.store, store)
	envdir = filepath.Join(dir, "env")
	bbEnvdir(t, envdir, map[string]string{"WALE_FILE_PREFIX": "file://localhost" + store, "WALE_LOG_DESTINATION": "stderr"})
	return envdir, store
}

// segAfterStop is the n-th segment after the backup's stop segment.
func (a *vfArchive) segAfterStop(t *testing.T, n int) string {
	t.Helper()
	b := a.rep.Backups[0]
	var log, seg, tli uint32
	fmt.Sscanf(b.StopSegment, "%08X%08X%08X", &tli, &log, &seg)
	s := fmt.Sprintf("%08X%08X%08X", tli, log, seg+uint32(n))
	if s >= b.NewestArchived {
		t.Fatalf("segment %s is not before the newest archived %s", s, b.NewestArchived)
	}
	return s
}

// vfWaitArchived waits until the archiver has stored segment name.
func vfWaitArchived(t *testing.T, c *pgtest.Cluster, name string) {
	t.Helper()
	c.WaitArchived(t, name, 120*time.Second)
}

func vfDecode(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := blob.NewReader(path, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vfEncodeLZ4(t *testing.T, path string, data []byte) {
	t.Helper()
	var buf bytes.Buffer
	w, err := codec.LZ4{}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// vfWantProblem runs verify on envdir and wants exit 1 with a problem line
// naming object and saying what.
func vfWantProblem(t *testing.T, bin, envdir, object, what string) bbResult {
	t.Helper()
	r := bbWaldenAsRoot(t, bin, envdir, "verify")
	if r.code != 1 {
		t.Fatalf("verify: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "walden verify: ") && strings.Contains(l, object) && strings.Contains(l, what) {
			return r
		}
	}
	t.Fatalf("no problem line naming %q with %q:\n%s", object, what, r.stderr)
	return r
}

// TestVerifyReportsEachDamageByName damages copies of one real archive in
// each way verify must catch, and wants each reported by object name.
func TestVerifyReportsEachDamageByName(t *testing.T) {
	a := vfSetup(t)
	seg := func(store, name string) string { return filepath.Join(store, "wal_005", name+".lz4") }

	t.Run("clean archive passes", func(t *testing.T) {
		r := bbMust(t, bbWaldenAsRoot(t, a.bin, a.envdir, "verify"), "verify")
		if !strings.Contains(r.stdout, "restorable to consistency") || !strings.Contains(r.stdout, ": 0 problem(s)") {
			t.Errorf("summary:\n%s", r.stdout)
		}
		r = bbMust(t, bbWaldenAsRoot(t, a.bin, a.envdir, "verify", "--quick", "--backup", "LATEST"), "verify --quick")
		if !strings.Contains(r.stdout, "restorable to consistency") || !strings.Contains(r.stdout, "0 bytes read") {
			t.Errorf("quick summary:\n%s", r.stdout)
		}
	})
	t.Run("missing segment in the middle", func(t *testing.T) {
		envdir, store := a.copyStore(t)
		x := a.segAfterStop(t, 1)
		os.Remove(seg(store, x))
		r := vfWantProblem(t, a.bin, envdir, "wal_005/"+x+".."+x, "missing from the archive (1 segment(s))")
		if !strings.Contains(r.stdout, "restorable to consistency") || !strings.Contains(r.stdout, "first missing "+x) {
			t.Errorf("a gap after the stop segment keeps the backup consistent with a shorter window:\n%s", r.stdout)
		}
	})
	t.Run("flipped byte in a partition", func(t *testing.T) {
		envdir, store := a.copyStore(t)
		parts, _ := filepath.Glob(filepath.Join(store, "basebackups_005", "*", "tar_partitions", "part_*"))
		if len(parts) == 0 {
			t.Fatal("no partitions")
		}
		b, _ := os.ReadFile(parts[0])
		b[len(b)/2] ^= 0x01
		os.WriteFile(parts[0], b, 0o644)
		vfWantProblem(t, a.bin, envdir, "tar_partitions/"+filepath.Base(parts[0]), "is corrupt: SHA-256")
	})
	t.Run("truncated segment", func(t *testing.T) {
		envdir, store := a.copyStore(t)
		x := a.segAfterStop(t, 1)
		data := vfDecode(t, seg(store, x))
		vfEncodeLZ4(t, seg(store, x), data[:len(data)/2])
		vfWantProblem(t, a.bin, envdir, "wal_005/"+x+".lz4", "(truncated)")
	})
	t.Run("another segment's WAL under a name", func(t *testing.T) {
		envdir, store := a.copyStore(t)
		x, y := a.segAfterStop(t, 1), a.segAfterStop(t, 2)
		b, _ := os.ReadFile(seg(store, y))
		os.WriteFile(seg(store, x), b, 0o644)
		vfWantProblem(t, a.bin, envdir, "wal_005/"+x+".lz4", "(WAL of another segment)")
	})
	t.Run("WAL of another cluster under a segment name", func(t *testing.T) {
		envdir, store := a.copyStore(t)
		x := a.segAfterStop(t, 1)
		other, oenv, ostore := bbArchivingCluster(t, a.bin, 1, nil)
		_ = oenv
		for i := 0; other.Psql(t, "select pg_walfile_name(pg_current_wal_lsn())") <= x; i++ {
			other.Psql(t, fmt.Sprintf("insert into marker values (%d, 'x')", i))
			other.Psql(t, "select pg_switch_wal()")
		}
		vfWaitArchived(t, other, x)
		b, err := os.ReadFile(seg(ostore, x))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(seg(store, x), b, 0o644)
		vfWantProblem(t, a.bin, envdir, "wal_005/"+x+".lz4", "is WAL of another cluster")
	})
	t.Run("unknown backup name", func(t *testing.T) {
		r := bbWaldenAsRoot(t, a.bin, a.envdir, "verify", "--backup", "base_000000010000000000000099_00000028")
		if r.code == 0 || !strings.Contains(r.stderr, "MSG: no such backup") || r.stdout != "" {
			t.Errorf("unknown backup: exit %d\nstdout %q\nstderr %s", r.code, r.stdout, r.stderr)
		}
	})
}

// TestVerifyWALEFixtureClean verifies WAL-E's own archive: an offline
// backup whose name is not its start, lzop partitions and segments.
func TestVerifyWALEFixtureClean(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	envdir := bbFixtureArchive(t)
	r := bbMust(t, bbWalden(t, bin, envdir, nil, "verify", "--json"), "verify")
	var rep verify.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	b := rep.Backups[0]
	if !rep.OK || b.Source != "wal-e" || b.StartSegment != "000000010000000000000004" || b.StopSegment != "000000010000000000000004" ||
		b.NewestReachable != "000000010000000000000006" || !b.Consistent || b.SystemIdentifier != "7711610613508410003" || rep.SegmentsChecked != 3 {
		t.Errorf("report: %s", r.stdout)
	}
}

// vfPromoteCopy restores the archive's backup into a new cluster that
// archives to the same store, replays to the end and promotes: a timeline
// switch, as after a failover. It returns the new cluster.
func vfPromoteCopy(t *testing.T, a *vfArchive) *pgtest.Cluster {
	t.Helper()
	r := pgtest.New(t, pgtest.Options{NoInit: true, Conf: map[string]string{
		"wal_level":                "replica",
		"archive_mode":             "on",
		"archive_command":          pgtest.Quote(a.bin + " --envdir " + a.envdir + " wal-push %p"),
		"restore_command":          pgtest.Quote(bbRestoreCommand(a.bin, a.envdir, 2)),
		"recovery_target_timeline": pgtest.Quote("latest"),
	}})
	bbMust(t, bbWalden(t, a.bin, a.envdir, nil, "backup-fetch", r.Dir, "LATEST"), "backup-fetch")
	bbWriteFile(t, filepath.Join(r.Dir, "recovery.signal"), "")
	r.Start(t)
	r.WaitRecoveryDone(t, 120*time.Second)
	return r
}

// TestVerifyFollowsTimelineSwitchAndNeedsItsHistory verifies an archive
// where recovery must switch from timeline 1 to 2, then the same archive
// without 00000002.history.
func TestVerifyFollowsTimelineSwitchAndNeedsItsHistory(t *testing.T) {
	a := vfSetup(t)
	a.c.Stop(t)
	r := vfPromoteCopy(t, a)
	r.Psql(t, "insert into marker values (100, 'on-timeline-2')")
	cur := r.Psql(t, "select pg_walfile_name(pg_current_wal_lsn())")
	if !strings.HasPrefix(cur, "00000002") {
		t.Fatalf("promoted cluster writes %s", cur)
	}
	r.Psql(t, "select pg_switch_wal()")
	vfWaitArchived(t, r, cur)

	res := bbMust(t, bbWaldenAsRoot(t, a.bin, a.envdir, "verify", "--json"), "verify across the switch")
	var rep verify.Report
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	b := rep.Backups[0]
	if len(b.TimelinePath) != 2 || b.TimelinePath[1] != 2 || b.NewestReachable != cur || !b.Consistent {
		t.Fatalf("report across the switch: %s", res.stdout)
	}

	envdir, store := a.copyStore(t)
	if err := os.Remove(filepath.Join(store, "wal_005", "00000002.history.lz4")); err != nil {
		t.Fatal(err)
	}
	vfWantProblem(t, a.bin, envdir, "wal_005/00000002.history", "missing: timeline 2 has archived segments")
}

// TestVerifyDrillPassesAndCatchesAGapAfterTheBackup drills a good archive
// (it must replay to the newest archived segment, query, and clean up),
// then the same archive with a segment missing after the backup's end,
// where PostgreSQL promotes early and the drill must fail naming it; and
// refuses bad input with one line.
func TestVerifyDrillPassesAndCatchesAGapAfterTheBackup(t *testing.T) {
	a := vfSetup(t)
	newest := a.rep.Backups[0].NewestArchived

	t.Run("good archive", func(t *testing.T) {
		scratch := filepath.Join(bbScratch(t), "drill")
		r := bbMust(t, bbWaldenAsRoot(t, a.bin, a.envdir, "verify", "--restore", "--scratch", scratch,
			"--query", "select count(*) from marker"), "drill")
		for _, want := range []string{"PASSED", "reached: " + newest + " (newest archived " + newest + ")", "query:  4\n", "MiB/s"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("drill output lacks %q:\n%s", want, r.stdout)
			}
		}
		if _, err := os.Stat(scratch); err == nil {
			if ents, _ := os.ReadDir(scratch); len(ents) > 0 {
				t.Errorf("scratch directory left behind: %v", ents)
			}
		}
		if !strings.Contains(r.stderr, "MSG: restore drill start") || !strings.Contains(r.stderr, "MSG: restore drill finish") {
			t.Errorf("no start/finish lines:\n%s", r.stderr)
		}
	})
	t.Run("gap after the backup's end", func(t *testing.T) {
		envdir, store := a.copyStore(t)
		x := a.segAfterStop(t, 1)
		os.Remove(filepath.Join(store, "wal_005", x+".lz4"))
		scratch := filepath.Join(bbScratch(t), "drill")
		r := bbWaldenAsRoot(t, a.bin, envdir, "verify", "--restore", "--scratch", scratch, "--json")
		if r.code != 1 {
			t.Fatalf("drill over a gap: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, bbTail(r.stderr, 3000))
		}
		want := "the first segment recovery could not use is " + x + " (missing from the archive)"
		if !strings.Contains(r.stderr, "walden verify: drill of ") || !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, bbTail(r.stderr, 3000))
		}
		var res verify.DrillResult
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.OK {
			t.Errorf("json: %v %s", err, r.stdout)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		full := bbScratch(t)
		os.WriteFile(filepath.Join(full, "something"), nil, 0o644)
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--scratch", full}, "MSG: scratch directory " + full + " is not empty"},
			{[]string{"--scratch", filepath.Join(full, "d"), "--pg-bin", "/nonexistent/bin"}, "MSG: PostgreSQL binaries not found: /nonexistent/bin has no postgres"},
			{[]string{"--backup", "base_000000010000000000000099_00000028"}, "MSG: no such backup"},
			{[]string{"--target-lsn", "nonsense"}, `error: argument --target-lsn: "nonsense" is not an LSN`},
		} {
			r := bbWaldenAsRoot(t, a.bin, a.envdir, append([]string{"verify", "--restore"}, c.args...)...)
			if r.code == 0 || !strings.Contains(r.stderr, c.want) || r.stdout != "" {
				t.Errorf("%v: exit %d, stdout %q, stderr:\n%s", c.args, r.code, r.stdout, r.stderr)
			}
		}
		if _, err := os.Stat(filepath.Join(full, "d")); err == nil {
			t.Errorf("a refused drill created its scratch directory")
		}
	})
}

// TestAgentRunsVerifyAndDrillOnScheduleAndPublishesThem runs the agent
// with verify and a drill every minute and reads their outcome from the
// metrics and /status.
func TestAgentRunsVerifyAndDrillOnScheduleAndPublishesThem(t *testing.T) {
	a := vfSetup(t)
	env, addr := agentEnvdir(t, a.c, a.store, map[string]string{
		"WALDEN_VERIFY_SCHEDULE": "* * * * *",
		"WALDEN_DRILL_SCHEDULE":  "* * * * *",
		"WALDEN_DRILL_DIR":       filepath.Join(bbScratch(t), "drills"),
	})
	ag := startAgent(t, a.bin, env, a.c.Dir, addr, nil)
	ag.waitLog(t, "MSG: verify complete", 150*time.Second)
	ag.waitLog(t, "MSG: drill complete", 150*time.Second)
	for _, want := range []string{"MSG: starting verify", "MSG: starting drill"} {
		if ag.count(want) == 0 {
			t.Errorf("no %q line", want)
		}
	}
	get := func(path string) string {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	m := get("/metrics")
	for _, name := range []string{"walden_verify_last_success_timestamp_seconds", "walden_drill_last_success_timestamp_seconds",
		"walden_drill_duration_seconds", "walden_drill_replay_seconds"} {
		re := regexp.MustCompile(`(?m)^` + name + ` ([0-9.e+]+)$`)
		v := re.FindStringSubmatch(m)
		if v == nil || v[1] == "0" {
			t.Errorf("metric %s not set:\n%s", name, m)
		}
	}
	if !strings.Contains(m, "\nwalden_verify_problems 0\n") {
		t.Errorf("walden_verify_problems not 0")
	}
	var st agent.Report
	if err := json.Unmarshal([]byte(get("/status")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Checks == nil || st.Checks.LastVerify == nil || !st.Checks.LastVerify.OK || st.Checks.LastDrill == nil || !st.Checks.LastDrill.OK {
		t.Errorf("/status: %+v", st.Checks)
	}
}
