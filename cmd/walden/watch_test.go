package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/walden-pg/walden/internal/pgtest"
	"github.com/walden-pg/walden/progress"
)

// bbWaldenOnTerminal runs walden as postgres with its stderr on a pseudo
// terminal and returns what it drew there (the terminal's "\r\n" line
// endings turned back into "\n").
func bbWaldenOnTerminal(t *testing.T, bin, envdir string, env []string, args ...string) bbResult {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 160}); err != nil {
		t.Fatalf("pty size: %v", err)
	}
	var screen bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(&screen, ptmx) // ends with EIO once every tty copy is closed
	}()
	cmd := pgtest.Command(t, env, "", bin, append([]string{"--envdir", envdir}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, tty
	err = cmd.Run()
	tty.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output did not end")
	}
	r := bbResult{stdout: out.String(), stderr: strings.ReplaceAll(screen.String(), "\r\n", "\n")}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return r
}

var percentRe = regexp.MustCompile(`\b[0-9]{1,3}%`)

// checkDrawn asserts a terminal run drew a bar with percentages, its final
// 100% frame, and the summary line, and that log records still came out
// on lines of their own.
func checkDrawn(t *testing.T, r bbResult, label, logLine string) {
	t.Helper()
	s := r.stderr
	if !strings.Contains(s, "\r") {
		t.Errorf("%s on a terminal drew no frame (no carriage return):\n%q", label, bbTail(s, 2000))
	}
	if len(percentRe.FindAllString(s, -1)) == 0 || !strings.Contains(s, "100%") {
		t.Errorf("%s on a terminal shows no percent or no final 100%% frame:\n%q", label, bbTail(s, 2000))
	}
	if !regexp.MustCompile(`(?m)^` + label + `: [0-9.]+ (B|KiB|MiB|GiB) in [0-9a-z]+, [0-9.]+ (B|KiB|MiB|GiB)/s$`).MatchString(s) {
		t.Errorf("%s on a terminal printed no summary line:\n%q", label, bbTail(s, 2000))
	}
	if !regexp.MustCompile(`(?m)^wal_e\.|(?m)^walden`).MatchString(s) || !strings.Contains(s, logLine) {
		t.Errorf("%s log records missing or not at the start of a line:\n%q", label, bbTail(s, 3000))
	}
}

// checkPlain asserts a run with stderr on a pipe drew nothing.
func checkPlain(t *testing.T, r bbResult, label string) {
	t.Helper()
	if strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Errorf("%s with stderr on a pipe wrote a carriage return or escape:\n%q", label, bbTail(r.stderr, 2000))
	}
	if strings.Contains(r.stderr, label+": ") && regexp.MustCompile(label+`: [0-9.]+ (B|KiB|MiB|GiB) in`).MatchString(r.stderr) {
		t.Errorf("%s with stderr on a pipe printed the terminal summary", label)
	}
}

// TestProgressBarDrawsOnTerminalOnlyForPushAndFetch runs backup-push,
// verify and backup-fetch of a real cluster with stderr on a pseudo terminal (bar,
// final 100% frame, summary), on a pipe (no carriage return, no escape
// byte) and on a terminal with --terse (no bar).
func TestProgressBarDrawsOnTerminalOnlyForPushAndFetch(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, envdir, _ := bbArchivingCluster(t, bin, 5, nil)

	r := bbMust(t, bbWaldenOnTerminal(t, bin, envdir, c.Env(), "backup-push", c.Dir), "backup-push on a terminal")
	checkDrawn(t, r, "backup-push", "MSG: finish uploading a base backup volume")
	m := bbBackupNameRe.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no backup name in:\n%s", bbTail(r.stderr, 2000))
	}
	name := m[1]

	r = bbMust(t, bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir), "backup-push on a pipe")
	checkPlain(t, r, "backup-push")
	if !strings.Contains(r.stderr, "MSG: base backup complete") {
		t.Errorf("backup-push on a pipe lost its log:\n%s", bbTail(r.stderr, 2000))
	}

	r = bbMust(t, bbWaldenOnTerminal(t, bin, envdir, c.Env(), "--terse", "backup-push", c.Dir), "backup-push --terse on a terminal")
	if strings.ContainsAny(r.stderr, "\r\x1b") || strings.Contains(r.stderr, "%") {
		t.Errorf("backup-push --terse drew a bar:\n%q", bbTail(r.stderr, 2000))
	}

	r = bbMust(t, bbWaldenOnTerminal(t, bin, envdir, nil, "verify", "--backup", name), "verify on a terminal")
	checkDrawn(t, r, "verify", "MSG: verify start")
	r = bbMust(t, bbWalden(t, bin, envdir, nil, "verify", "--backup", name), "verify on a pipe")
	checkPlain(t, r, "verify")
	if !strings.Contains(r.stderr, "MSG: verify finish") {
		t.Errorf("verify on a pipe lost its log:\n%s", bbTail(r.stderr, 2000))
	}

	dst := bbScratch(t) + "/fetched"
	r = bbMust(t, bbWaldenOnTerminal(t, bin, envdir, nil, "backup-fetch", dst, name), "backup-fetch on a terminal")
	checkDrawn(t, r, "backup-fetch", "MSG: base backup restored")
	if _, err := os.Stat(dst + "/global/pg_control"); err != nil {
		t.Errorf("backup-fetch on a terminal restored no pg_control: %v", err)
	}

	dst2 := bbScratch(t) + "/fetched"
	r = bbMust(t, bbWalden(t, bin, envdir, nil, "backup-fetch", dst2, name), "backup-fetch on a pipe")
	checkPlain(t, r, "backup-fetch")
	if !strings.Contains(r.stderr, "MSG: base backup restored") {
		t.Errorf("backup-fetch on a pipe lost its log:\n%s", bbTail(r.stderr, 2000))
	}
}

var replayLineRe = regexp.MustCompile(`MSG: recovery progress\n        DETAIL: recovery: replayed ([0-9A-F]{24}) \(LSN [0-9A-F]+/[0-9A-F]+[^)]*\), target ([0-9A-F]{24}): [0-9]+ of [0-9]+ segments \([0-9]+%\), [0-9.]+ segments/s, ETA`)

// TestRestoreStartLogsReplayProgressOffTerminal restores a backup plus 40
// archived segments with walden restore --start, stderr on a pipe and the
// progress interval shortened: replay lines name the replayed segment and
// the newest archived one as the target, and the last line and summary
// come after the promotion.
func TestRestoreStartLogsReplayProgressOffTerminal(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 1, nil)
	r := bbMust(t, bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir), "backup-push")
	if bbBackupNameRe.FindStringSubmatch(r.stderr) == nil {
		t.Fatalf("no backup name in:\n%s", bbTail(r.stderr, 2000))
	}
	var newest string
	for i := 0; i < 40; i++ {
		newest = switchSegment(t, c, fmt.Sprintf("insert into marker values (%d, 'm%d'); insert into pgbench_history select * from pgbench_history", i, i))
	}
	waitArchived(t, store, newest)

	dst := bbRestoreTarget(t)
	r = bbMust(t, bbWalden(t, bin, envdir, []string{"WALDEN_PROGRESS_INTERVAL=100ms"}, "restore", dst.Dir, "--start"), "restore --start")
	checkPlain(t, r, "recovery")
	ms := replayLineRe.FindAllStringSubmatch(r.stderr, -1)
	if len(ms) == 0 {
		t.Fatalf("no replay progress line with a segment:\n%s", bbTail(r.stderr, 4000))
	}
	last := ms[len(ms)-1]
	if last[2] != newest {
		t.Errorf("replay target is %s, want the newest archived segment %s", last[2], newest)
	}
	if last[1][:8] != newest[:8] {
		t.Errorf("last replayed segment %s is not on the archive's timeline (%s)", last[1], newest)
	}
	if last[1] < ms[0][1] {
		t.Errorf("replay went backwards: %s then %s", ms[0][1], last[1])
	}
	fin := regexp.MustCompile(`MSG: recovery replay finished\n        DETAIL: recovery: ([0-9]+) segments in [0-9a-z]+`).FindStringSubmatch(r.stderr)
	if fin == nil {
		t.Fatalf("no final replay summary:\n%s", bbTail(r.stderr, 3000))
	}
	if i, j := strings.LastIndex(r.stderr, "MSG: recovery replay finished"), strings.Index(r.stderr, "MSG: recovery complete"); j < 0 || i > j {
		t.Errorf("the replay summary should precede \"recovery complete\":\n%s", bbTail(r.stderr, 3000))
	}
	t.Logf("%d replay lines, last: %s", len(ms), last[0])
	if got := dst.Psql(t, "select count(*) from marker"); got != "40" {
		t.Errorf("restored %s markers, want 40", got)
	}

	// The same on a terminal: the fetch bar, the replay bar with the
	// segment, and the summary line; the periodic log line is not written
	// there.
	dst2 := bbRestoreTarget(t)
	r = bbMust(t, bbWaldenOnTerminal(t, bin, envdir, []string{"WALDEN_PROGRESS_INTERVAL=100ms"}, "restore", dst2.Dir, "--start"), "restore --start on a terminal")
	if !regexp.MustCompile(`\rrecovery [0-9A-F]{24} +[0-9]+% `).MatchString(r.stderr) || !strings.Contains(r.stderr, "100%") {
		t.Errorf("no replay bar with a segment and a final 100%% frame on the terminal:\n%q", bbTail(r.stderr, 3000))
	}
	if !regexp.MustCompile(`(?m)^recovery: [0-9]+ segments in [0-9a-z]+, [0-9.]+ segments/s$`).MatchString(r.stderr) {
		t.Errorf("no replay summary on the terminal:\n%q", bbTail(r.stderr, 3000))
	}
	if !regexp.MustCompile(`(?m)^backup-fetch: [0-9.]+ (B|KiB|MiB|GiB) in `).MatchString(r.stderr) {
		t.Errorf("restore on a terminal drew no fetch bar summary:\n%q", bbTail(r.stderr, 3000))
	}
	if strings.Contains(r.stderr, "MSG: recovery progress") || !strings.Contains(r.stderr, "MSG: recovery complete") {
		t.Errorf("terminal log: want no periodic progress records and the completion record:\n%q", bbTail(r.stderr, 3000))
	}
}

// switchSegment writes with sql, ends the segment written to and returns
// its name (a segment holding WAL, which pg_switch_wal does not skip).
func switchSegment(t *testing.T, c *pgtest.Cluster, sql string) string {
	t.Helper()
	c.Psql(t, sql)
	seg := c.Psql(t, "select pg_walfile_name(pg_current_wal_lsn())")
	c.Psql(t, "select pg_switch_wal()")
	return seg
}

// waitArchived waits until seg is in the store. pg_stat_archiver may never
// name it: a parallel wal-push stores the segments after its own and
// marks them done itself.
func waitArchived(t *testing.T, store, seg string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m, _ := filepath.Glob(filepath.Join(store, "wal_005", seg+".*")); len(m) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not archived in time", seg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// statusJSON runs walden status --json as postgres and decodes it.
func statusJSON(t *testing.T, bin, envdir string, env []string, args ...string) map[string]any {
	t.Helper()
	r := bbMust(t, bbWalden(t, bin, envdir, env, append([]string{"status", "--json"}, args...)...), "status --json")
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return m
}

// TestStatusAnswersAreWeSafe runs walden status on an empty store, on a
// healthy archive of a running cluster, and once archive_command fails:
// the restore window, pg_stat_archiver and the .ready files, and the
// verdict, in text and in JSON (with the fields it always had).
func TestStatusAnswersAreWeSafe(t *testing.T) {
	bin := pgtest.BuildWalden(t)

	// An empty store: nothing to restore, not safe.
	dir := bbScratch(t)
	emptyEnv := filepath.Join(dir, "env")
	bbEnvdir(t, emptyEnv, map[string]string{"WALE_FILE_PREFIX": "file://localhost" + filepath.Join(dir, "store"),
		"WALE_LOG_DESTINATION": "stderr", "WALDEN_METRICS_LISTEN": "127.0.0.1:1"})
	os.Mkdir(filepath.Join(dir, "store"), 0o755)
	pgtest.Chown(t, filepath.Join(dir, "store"))
	m := statusJSON(t, bin, emptyEnv, nil, "--pgdata", filepath.Join(dir, "nowhere"))
	if m["safe"] != false || m["latest_backup"] != nil || m["pitr_window"].(map[string]any)["backups"] != 0.0 {
		t.Errorf("empty store: %v", m)
	}
	if _, ok := m["health"]; !ok {
		t.Errorf("status --json lost its health field: %v", m)
	}
	r := bbMust(t, bbWalden(t, bin, emptyEnv, nil, "status", "--pgdata", filepath.Join(dir, "nowhere")), "status")
	for _, want := range []string{"latest backup:  none", "restore window: none (no base backup)", "safe:           NO: no successful base backup yet"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("empty store: status lacks %q:\n%s", want, r.stdout)
		}
	}

	// A healthy archive.
	c, envdir, store := bbArchivingCluster(t, bin, 1, map[string]string{"WALDEN_METRICS_LISTEN": "127.0.0.1:1"})
	r = bbMust(t, bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir), "backup-push")
	name := bbBackupNameRe.FindStringSubmatch(r.stderr)[1]
	newest := switchSegment(t, c, "insert into marker values (1, 'one')")
	waitArchived(t, store, newest)
	m = statusJSON(t, bin, envdir, c.Env(), "--pgdata", c.Dir)
	w, _ := m["pitr_window"].(map[string]any)
	arch, _ := m["archiver"].(map[string]any)
	if m["safe"] != true || w == nil || w["oldest_backup"] != name || w["newest_segment"] != newest || arch == nil || arch["failing"] != false ||
		arch["archived_count"].(float64) < 1 || arch["last_archived_wal"] != newest {
		t.Errorf("healthy archive: %v", m)
	}
	if lb, _ := m["latest_backup"].(map[string]any); lb == nil || lb["name"] != name {
		t.Errorf("healthy archive: latest_backup %v, want %s", m["latest_backup"], name)
	}
	r = bbMust(t, bbWalden(t, bin, envdir, c.Env(), "status", "--pgdata", c.Dir), "status")
	for _, want := range []string{"restore window: from ", "(start of " + name + ", 1 backups kept) to " + newest, "archiver:       ", "safe:           yes"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("healthy archive: status lacks %q:\n%s", want, r.stdout)
		}
	}

	// archive_command fails: failures and .ready files pile up.
	c.Psql(t, "alter system set archive_command = 'false'")
	c.Psql(t, "select pg_reload_conf()")
	time.Sleep(500 * time.Millisecond)
	for i := 0; i < 3; i++ {
		c.Psql(t, fmt.Sprintf("insert into marker values (%d, 'lag'); select pg_switch_wal()", 100+i))
	}
	deadline := time.Now().Add(60 * time.Second)
	for c.Psql(t, "select failed_count > 0 and last_failed_time > coalesce(last_archived_time, '-infinity') from pg_stat_archiver") != "t" {
		if time.Now().After(deadline) {
			t.Fatal("archive_command = false never failed")
		}
		time.Sleep(200 * time.Millisecond)
	}
	m = statusJSON(t, bin, envdir, c.Env(), "--pgdata", c.Dir)
	arch, _ = m["archiver"].(map[string]any)
	ready, _ := m["archive_ready_files"].(float64)
	if m["safe"] != false || arch == nil || arch["failing"] != true || arch["failed_count"].(float64) < 1 || ready < 1 {
		t.Errorf("failing archiver: %v", m)
	}
	r = bbMust(t, bbWalden(t, bin, envdir, c.Env(), "status", "--pgdata", c.Dir), "status")
	for _, want := range []string{"archiver:       FAILING: ", "not archived:   ", "safe:           NO: archiving is failing: "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("failing archiver: status lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestReplaySegmentKeepsTheReplayedTimelineAcrossPromotion pins the
// naming of the last replayed segment: the promoted server reports its new
// timeline at the same position, which must not rename the segment.
func TestReplaySegmentKeepsTheReplayedTimelineAcrossPromotion(t *testing.T) {
	var tl timelineTrack
	steps := []struct {
		seg        string
		inRecovery bool
		want       string
	}{
		{"000000010000000000000004", true, "000000010000000000000004"},
		{"000000010000000000000009", true, "000000010000000000000009"},
		{"000000020000000000000009", true, "000000010000000000000009"}, // end-of-recovery checkpoint
		{"000000020000000000000009", false, "000000010000000000000009"},
	}
	for i, s := range steps {
		if got := tl.name(progress.Position{Segment: s.seg}, s.inRecovery).Segment; got != s.want {
			t.Errorf("step %d: %s (in recovery %v) named %s, want %s", i, s.seg, s.inRecovery, got, s.want)
		}
	}
	// A timeline switch while replay advances is taken.
	if got := tl.name(progress.Position{Segment: "00000002000000000000000A"}, true).Segment; got != "00000002000000000000000A" {
		t.Errorf("switch during replay named %s", got)
	}
}

// TestReplayTargetReadsTheRecoverySettings: the replay target is the
// recovery_target_time or _lsn walden restore wrote (the last setting
// wins, as in PostgreSQL), unknown for a name, xid or immediate target,
// and the archive's end without a target.
func TestReplayTargetReadsTheRecoverySettings(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "postgresql.auto.conf"), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# Do not edit\nrecovery_target_time = '2026-01-01 00:00:00+00'\n\n# Recovery settings\nrecovery_target_time = '2026-11-24 05:48:16.946168+00'\nrecovery_target_action = 'promote'\n")
	got, toEnd := replayTarget(dir)
	if want := time.Date(2026, 11, 24, 5, 48, 16, 946168000, time.UTC); !got.Time.Equal(want) || got.Segment != "" || got.LSN != 0 || toEnd {
		t.Errorf("time target: %+v, want %v", got, want)
	}
	write("recovery_target_lsn = '0/3000028'\n")
	if got, toEnd := replayTarget(dir); got.LSN != 0x3000028 || !got.Time.IsZero() || toEnd {
		t.Errorf("LSN target: %+v", got)
	}
	write("recovery_target_name = 'before it''s gone'\n")
	if got, toEnd := replayTarget(dir); got != (progress.Target{}) || toEnd {
		t.Errorf("name target: %+v (to the archive's end %v), want none", got, toEnd)
	}
	if got := readAutoConf(filepath.Join(dir, "postgresql.auto.conf"))["recovery_target_name"]; got != "before it's gone" {
		t.Errorf("quoted value read as %q", got)
	}
	write("restore_command = 'walden wal-fetch \"%f\" \"%p\"'\n")
	if got, toEnd := replayTarget(dir); got != (progress.Target{}) || !toEnd {
		t.Errorf("no target: %+v (to the archive's end %v), want the archive's end", got, toEnd)
	}
}
