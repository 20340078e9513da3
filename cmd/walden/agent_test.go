package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/walden-pg/walden/agent"
	"github.com/walden-pg/walden/internal/pgtest"
)

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runningAgent is a `walden --envdir ENV agent` process run as postgres.
type runningAgent struct {
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	addr    string // metrics listener
	exited  chan struct{}
	waitErr error
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// agentEnvdir writes the envdir an agent test shares between the agent,
// archive_command and the manual commands.
func agentEnvdir(t *testing.T, c *pgtest.Cluster, store string, extra map[string]string) (dir, addr string) {
	t.Helper()
	dir = filepath.Join(c.Base, "env")
	addr = freeAddr(t)
	vars := map[string]string{
		"WALE_FILE_PREFIX":         "file://localhost" + store,
		"WALE_LOG_DESTINATION":     "stderr",
		"WALDEN_METRICS_LISTEN":    addr,
		"WALDEN_SOCKET":            filepath.Join(c.MkDir(t, "run"), "agent.sock"),
		"WALDEN_LOCK_DIR":          c.MkDir(t, "lock"),
		"WALDEN_PROGRESS_INTERVAL": "1s",
		"WALDEN_BACKUP_SCHEDULE":   "0 0 1 1 *",
	}
	for k, v := range extra {
		vars[k] = v
	}
	writeEnvdir(t, dir, vars)
	return dir, addr
}

func startAgent(t *testing.T, bin, env, pgdata, addr string, extraEnv []string) *runningAgent {
	t.Helper()
	r := &runningAgent{stderr: &lockedBuffer{}, addr: addr, exited: make(chan struct{})}
	r.cmd = pgtest.Command(t, extraEnv, "", bin, "--envdir", env, "agent", "--pgdata", pgdata)
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.waitErr = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("agent stderr:\n%s", lastLines(r.stderr.String(), 60))
		}
	})
	r.waitLog(t, "MSG: agent started", 20*time.Second)
	return r
}

func (r *runningAgent) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := r.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

func (r *runningAgent) count(s string) int { return strings.Count(r.stderr.String(), s) }

// waitLog waits until s appears in the agent's stderr (or it exits).
func (r *runningAgent) waitLog(t *testing.T, s string, d time.Duration) {
	t.Helper()
	r.waitCount(t, s, 1, d)
}

func (r *runningAgent) waitCount(t *testing.T, s string, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for r.count(s) < n {
		select {
		case <-r.exited:
			t.Fatalf("agent exited (%v) before logging %q %d times:\n%s", r.waitErr, s, n, lastLines(r.stderr.String(), 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not log %q %d times within %v:\n%s", s, n, d, lastLines(r.stderr.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// backupNow sends SIGUSR1 and waits for that run's retention line.
func (r *runningAgent) backupNow(t *testing.T) {
	t.Helper()
	n := r.count("MSG: retention applied")
	r.signal(t, syscall.SIGUSR1)
	r.waitCount(t, "MSG: retention applied", n+1, 90*time.Second)
}

func (r *runningAgent) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + r.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metrics scrapes /metrics through the Prometheus text parser.
func (r *runningAgent) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	_, body := r.get(t, "/metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus text parser: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			if m.Gauge != nil {
				out[name] = m.Gauge.GetValue()
			}
			if m.Counter != nil {
				out[name] = m.Counter.GetValue()
			}
		}
	}
	return out
}

// stop sends SIGTERM and returns how long the agent took to exit.
func (r *runningAgent) stop(t *testing.T) time.Duration {
	t.Helper()
	t0 := time.Now()
	r.signal(t, syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(40 * time.Second):
		t.Fatalf("agent still running 40s after SIGTERM:\n%s", lastLines(r.stderr.String(), 40))
	}
	if r.waitErr != nil {
		t.Errorf("agent exit after SIGTERM: %v", r.waitErr)
	}
	return time.Since(t0)
}

// sentinels lists the complete backups in a file store.
func sentinels(t *testing.T, store string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(store, "basebackups_005", "*_backup_stop_sentinel.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range m {
		out = append(out, strings.TrimSuffix(filepath.Base(p), "_backup_stop_sentinel.json"))
	}
	return out
}

// runWalden runs walden as postgres and returns stdout, stderr, the exit
// status and the process id.
func runWalden(t *testing.T, env []string, dir, bin string, args ...string) (string, string, int, int) {
	t.Helper()
	cmd := pgtest.Command(t, env, dir, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code, cmd.Process.Pid
}

// archivingCluster is a started cluster whose archive_command is walden
// through the envdir, so that with an agent running it takes the fast path.
func archivingCluster(t *testing.T, bin string, extra map[string]string) (c *pgtest.Cluster, env, store, addr string) {
	t.Helper()
	c = pgtest.New(t, pgtest.Options{})
	store = c.MkDir(t, "store")
	env, addr = agentEnvdir(t, c, store, extra)
	c.WriteConf(t, map[string]string{
		"archive_mode":    "on",
		"wal_level":       "replica",
		"archive_command": pgtest.Quote(fmt.Sprintf("%s --envdir %s wal-push %%p", bin, env)),
	})
	c.Start(t)
	return c, env, store, addr
}

// TestAgentBacksUpPrunesAndReportsItsState runs an agent against a real
// PostgreSQL 15: backups on SIGUSR1, retention to 2, metrics the Prometheus
// parser reads, /healthz, status, the log file and its reopening, a broken
// configuration on SIGHUP that leaves the old one in force, a good one
// that takes effect, and a manual backup-push refused while the agent backs up.
func TestAgentBacksUpPrunesAndReportsItsState(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	t0 := time.Now()
	c, env, store, addr := archivingCluster(t, bin, map[string]string{"WALDEN_RETAIN": "2"})
	logDir := c.MkDir(t, "agentlog")
	logFile := filepath.Join(logDir, "agent.log")
	writeEnvdir(t, env, map[string]string{"WALDEN_LOG_FILE": logFile})
	c.Pgbench(t, "-i", "-s", "1", "-q")

	ag := startAgent(t, bin, env, c.Dir, addr, c.Env())
	if code, body := ag.get(t, "/healthz"); code != 503 || !strings.Contains(body, "no successful base backup") {
		t.Fatalf("healthz before the first backup: %d %q", code, body)
	}

	ag.backupNow(t)
	if code, body := ag.get(t, "/healthz"); code != 200 {
		t.Fatalf("healthz after a backup: %d %q", code, body)
	}
	c.Psql(t, "select pg_switch_wal()")
	ag.backupNow(t)
	ag.backupNow(t)
	if got := sentinels(t, store); len(got) != 2 {
		t.Fatalf("store holds %v after 3 backups with WALDEN_RETAIN=2", got)
	}

	m := ag.metrics(t)
	if v := m["walden_backup_last_success_timestamp_seconds"]; v < float64(t0.Unix()) || v > float64(time.Now().Unix()+1) {
		t.Errorf("walden_backup_last_success_timestamp_seconds = %v, test started at %d", v, t0.Unix())
	}
	if m["walden_backup_last_success_start_timestamp_seconds"] > m["walden_backup_last_success_timestamp_seconds"] || m["walden_backup_last_success_start_timestamp_seconds"] == 0 {
		t.Errorf("start %v, finish %v", m["walden_backup_last_success_start_timestamp_seconds"], m["walden_backup_last_success_timestamp_seconds"])
	}
	if m["walden_backup_last_size_bytes"] < 10<<20 || m["walden_backup_last_stored_bytes"] <= 0 || m["walden_backup_last_duration_seconds"] <= 0 {
		t.Errorf("size %v stored %v duration %v", m["walden_backup_last_size_bytes"], m["walden_backup_last_stored_bytes"], m["walden_backup_last_duration_seconds"])
	}
	for k, want := range map[string]float64{"walden_retention_deleted_total": 1, "walden_backup_failures_total": 0, "walden_backup_running": 0, "walden_wal_push_failures_total": 0} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	if m["walden_wal_pushed_total"] < 1 {
		t.Errorf("archive_command never went through the agent: walden_wal_pushed_total = %v", m["walden_wal_pushed_total"])
	}
	if lag, ok := m["walden_archive_lag_seconds"]; !ok || lag < 0 || lag != lag {
		t.Errorf("walden_archive_lag_seconds = %v (present %v)", lag, ok)
	}

	// status, with the agent answering.
	latest := sentinels(t, store)
	out, errOut, code, _ := runWalden(t, nil, "", bin, "--envdir", env, "status")
	if code != 0 || !strings.Contains(out, "running (pid") || !strings.Contains(out, "retention:      2") ||
		!(strings.Contains(out, latest[0]) || strings.Contains(out, latest[1])) {
		t.Errorf("status: %d\n%s%s", code, out, errOut)
	}
	out, _, _, _ = runWalden(t, nil, "", bin, "--envdir", env, "status", "--json")
	var rep agent.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Healthy || rep.Latest == nil || !rep.Agent.Running {
		t.Errorf("status --json: %v\n%s", err, out)
	}

	// The log file, then its reopening after logrotate moved it away.
	b, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(b), "MSG: agent started") || strings.Count(string(b), "MSG: base backup complete") != 3 {
		t.Fatalf("log file: %v\n%s", err, b)
	}
	if fi, _ := os.Stat(logFile); fi.Mode().Perm() != 0o640 {
		t.Errorf("log file mode %v", fi.Mode().Perm())
	}
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}

	// A broken configuration: logged, the old one kept.
	writeEnvdir(t, env, map[string]string{"WALDEN_BACKUP_SCHEDULE": "every night"})
	ag.signal(t, syscall.SIGHUP)
	ag.waitLog(t, "MSG: configuration reload failed; keeping the previous configuration", 10*time.Second)
	if !strings.Contains(ag.stderr.String(), "DETAIL: WALDEN_BACKUP_SCHEDULE: ") {
		t.Errorf("reload failure does not name the variable:\n%s", lastLines(ag.stderr.String(), 10))
	}
	ag.backupNow(t)
	if code, _ := ag.get(t, "/healthz"); code != 200 {
		t.Errorf("healthz after a broken reload: %d", code)
	}
	b, err = os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(b), "configuration reload failed") || strings.Contains(string(b), "MSG: agent started") {
		t.Fatalf("reopened log file: %v\n%s", err, b)
	}

	// A good configuration: a slow disk rate, which the next backup uses.
	writeEnvdir(t, env, map[string]string{"WALDEN_BACKUP_SCHEDULE": "0 0 1 1 *", "WALDEN_DISK_RATE_LIMIT": "4MiB"})
	ag.signal(t, syscall.SIGHUP)
	ag.waitLog(t, "MSG: configuration reloaded", 10*time.Second)
	n := ag.count("MSG: base backup complete")
	ag.signal(t, syscall.SIGUSR1)
	ag.waitCount(t, "MSG: starting a base backup", 5, 10*time.Second)
	ag.waitLog(t, "MSG: base backup progress", 30*time.Second)
	if m := ag.metrics(t); m["walden_backup_running"] != 1 {
		t.Fatalf("walden_backup_running = %v during a backup", m["walden_backup_running"])
	}

	// Never two backups at once: the manual one is refused, as is a second trigger.
	_, errOut, code, _ = runWalden(t, c.Env(), "", bin, "--envdir", env, "backup-push", c.Dir)
	if code == 0 || !strings.Contains(errOut, "another base backup") {
		t.Errorf("backup-push during the agent's backup: exit %d\n%s", code, errOut)
	}
	ag.signal(t, syscall.SIGUSR1)
	ag.waitLog(t, "MSG: base backup skipped", 10*time.Second)
	ag.waitCount(t, "MSG: base backup complete", n+1, 120*time.Second)
	if got := sentinels(t, store); len(got) != 2 {
		t.Errorf("store holds %v", got)
	}
	if d := ag.stop(t); d > 30*time.Second {
		t.Errorf("stop took %v", d)
	}
	if !strings.Contains(ag.stderr.String(), "MSG: agent stopped") {
		t.Error("no stop record")
	}
}

// TestAgentStopsMidBackupOnSIGTERMLeavingNoBackup lets the schedule fire
// (every minute), slows the backup down, and stops the agent during it.
func TestAgentStopsMidBackupOnSIGTERMLeavingNoBackup(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, env, store, addr := archivingCluster(t, bin, map[string]string{
		"WALDEN_BACKUP_SCHEDULE": "* * * * *",
		"WALDEN_DISK_RATE_LIMIT": "1MiB",
	})
	ag := startAgent(t, bin, env, c.Dir, addr, c.Env())
	ag.waitLog(t, "trigger=schedule", 75*time.Second)
	ag.waitLog(t, "MSG: base backup progress", 30*time.Second)
	if m := ag.metrics(t); m["walden_backup_running"] != 1 {
		t.Fatalf("not backing up: %v", m["walden_backup_running"])
	}
	if d := ag.stop(t); d > 30*time.Second {
		t.Errorf("agent took %v to stop", d)
	}
	log := ag.stderr.String()
	if !strings.Contains(log, "MSG: base backup cancelled") || strings.Contains(log, "MSG: base backup complete") {
		t.Errorf("log:\n%s", lastLines(log, 20))
	}
	if got := sentinels(t, store); len(got) != 0 {
		t.Errorf("a cancelled backup is listed: %v", got)
	}
	out, errOut, code, _ := runWalden(t, nil, "", bin, "--envdir", env, "backup-list")
	if code != 0 || strings.Contains(out, "base_") {
		t.Errorf("backup-list after the cancelled backup: %d\n%s%s", code, out, errOut)
	}
	// The backup's session is gone, and with it the server's backup mode.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := c.Psql(t, "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()")
		if n == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s client sessions still open after the agent stopped", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// status works without the agent, from the store and PGDATA.
	out, errOut, code, _ = runWalden(t, nil, "", bin, "--envdir", env, "status", "--pgdata", c.Dir)
	if code != 0 || !strings.Contains(out, "agent:          not running") || !strings.Contains(out, "latest backup:  none") || !strings.Contains(out, "archive lag:") {
		t.Errorf("status without an agent: %d\n%s%s", code, out, errOut)
	}
}

// TestAgentRefusesBadSettingsAtStartup: each bad setting stops the agent
// before any work, at once, naming the variable.
func TestAgentRefusesBadSettingsAtStartup(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c := pgtest.New(t, pgtest.Options{})
	store := c.MkDir(t, "store")
	run := c.MkDir(t, "run")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		name, value, names string
	}{
		{"WALDEN_BACKUP_SCHEDULE", "61 * * * *", "WALDEN_BACKUP_SCHEDULE"},
		{"WALDEN_BACKUP_SCHEDULE", "nightly", "WALDEN_BACKUP_SCHEDULE"},
		{"WALDEN_RETAIN", "seven", "WALDEN_RETAIN"},
		{"WALDEN_RETAIN", "0", "WALDEN_RETAIN"},
		{"WALDEN_METRICS_LISTEN", "nonsense", "WALDEN_METRICS_LISTEN"},
		{"WALDEN_METRICS_LISTEN", busy.Addr().String(), "WALDEN_METRICS_LISTEN"},
		{"WALE_FILE_PREFIX", "ftp://host/path", "WALE_FILE_PREFIX"},
		{"WALE_FILE_PREFIX", "", "WALE_FILE_PREFIX"}, // none at all
		{"WALDEN_PROGRESS_INTERVAL", "often", "WALDEN_PROGRESS_INTERVAL"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			env := filepath.Join(c.Base, "env-"+strconv.Itoa(int(time.Now().UnixNano())))
			vars := map[string]string{
				"WALE_FILE_PREFIX":      "file://localhost" + store,
				"WALE_LOG_DESTINATION":  "stderr",
				"WALDEN_METRICS_LISTEN": freeAddr(t),
				"WALDEN_SOCKET":         filepath.Join(run, "bad.sock"),
			}
			vars[tc.name] = tc.value // an empty file unsets the variable
			writeEnvdir(t, env, vars)
			if tc.value == "" {
				os.WriteFile(filepath.Join(env, tc.name), nil, 0o644)
			}
			t0 := time.Now()
			_, errOut, code, _ := runWalden(t, nil, "", bin, "--envdir", env, "agent", "--pgdata", c.Dir)
			if code == 0 || time.Since(t0) > 10*time.Second {
				t.Fatalf("exit %d after %v", code, time.Since(t0))
			}
			if !strings.Contains(errOut, tc.names) || strings.Contains(errOut, "agent started") {
				t.Fatalf("stderr does not name %s, or the agent started:\n%s", tc.names, errOut)
			}
		})
	}
	t.Run("PGDATA=not a data directory", func(t *testing.T) {
		env := filepath.Join(c.Base, "env-pgdata")
		writeEnvdir(t, env, map[string]string{"WALE_FILE_PREFIX": "file://localhost" + store, "WALE_LOG_DESTINATION": "stderr",
			"WALDEN_METRICS_LISTEN": freeAddr(t), "WALDEN_SOCKET": filepath.Join(run, "bad.sock"), "PGDATA": store})
		_, errOut, code, _ := runWalden(t, nil, "", bin, "--envdir", env, "agent")
		if code == 0 || !strings.Contains(errOut, "PGDATA") {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
	})
}

var (
	agentTimeRe  = regexp.MustCompile(`time=\S+`)
	agentPidRe   = regexp.MustCompile(`pid=\d+`)
	agentRateRe  = regexp.MustCompile(`rate=\S+`)
	agentSpeedRe = regexp.MustCompile(`complete at \S+KiB/s`)
)

// normalize drops what differs between two runs of one command.
func normalizeRun(s string) string {
	s = agentTimeRe.ReplaceAllString(s, "time=T")
	s = agentPidRe.ReplaceAllString(s, "pid=P")
	s = agentRateRe.ReplaceAllString(s, "rate=R")
	return agentSpeedRe.ReplaceAllString(s, "complete at RKiB/s")
}

// TestFastPathOutputMatchesStandalone runs wal-push and wal-fetch as
// PostgreSQL does (from the data directory, relative paths), once with no
// agent and once through it, and compares stdout, stderr and exit status;
// then checks the cases that must fall back to doing the work locally.
func TestFastPathOutputMatchesStandalone(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c := pgtest.New(t, pgtest.Options{})
	store := c.MkDir(t, "store")
	env, addr := agentEnvdir(t, c, store, nil)
	seg := "0000000100000000000000A1"
	segPath := filepath.Join(c.Dir, "pg_wal", seg)
	data := walSegmentOf(t, seg, clusterSysID(t, c.Dir), "\x00\x07\x0e\x15\xfa")
	if err := os.WriteFile(segPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, segPath)
	stored := filepath.Join(store, "wal_005", seg+".lz4")
	prefetch := filepath.Join(c.Dir, "pg_wal", ".wal-e", "prefetch")

	type step struct {
		name  string
		args  []string
		reset func()
	}
	steps := []step{
		{"push", []string{"wal-push", "pg_wal/" + seg}, func() { os.Remove(stored) }},
		{"push of a missing file", []string{"wal-push", "pg_wal/000000010000000000000099"}, nil},
		{"fetch", []string{"wal-fetch", "-p", "2", seg, "pg_wal/RECOVERYXLOG"}, func() {
			os.Remove(filepath.Join(c.Dir, "pg_wal", "RECOVERYXLOG"))
			// Let the previous run's prefetchers finish, then forget them.
			deadline := time.Now().Add(10 * time.Second)
			for {
				ents, _ := filepath.Glob(filepath.Join(prefetch, "*", "running", "*"))
				if len(ents) == 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			os.RemoveAll(filepath.Join(c.Dir, "pg_wal", ".wal-e"))
		}},
		{"fetch of a missing file", []string{"wal-fetch", "-p", "0", "0000000100000000000000F0", "pg_wal/RECOVERYXLOG"}, nil},
		{"fetch of a corrupt object", []string{"wal-fetch", "-p", "0", "0000000100000000000000B0", "pg_wal/RECOVERYXLOG"}, func() {
			os.MkdirAll(filepath.Join(store, "wal_005"), 0o755)
			os.WriteFile(filepath.Join(store, "wal_005", "0000000100000000000000B0.lz4"), []byte("not lz4"), 0o644)
		}},
		{"terse push", []string{"--terse", "wal-push", "pg_wal/" + seg}, func() { os.Remove(stored) }},
	}
	type result struct {
		stdout, stderr string
		code, pid      int
	}
	run := func(s step) result {
		if s.reset != nil {
			s.reset()
		}
		args := append([]string{"--envdir", env}, s.args...)
		out, errOut, code, pid := runWalden(t, nil, c.Dir, bin, args...)
		return result{out, errOut, code, pid}
	}
	standalone := map[string]result{}
	for _, s := range steps {
		standalone[s.name] = run(s)
	}
	if r := standalone["push"]; r.code != 0 || !strings.Contains(r.stderr, "completed archiving") {
		t.Fatalf("standalone push: %d\n%s", r.code, r.stderr)
	}
	if standalone["fetch of a missing file"].code != 1 || standalone["push of a missing file"].code != 1 {
		t.Fatal("standalone failures did not exit 1")
	}
	if standalone["fetch of a corrupt object"].code != 200 {
		t.Fatalf("standalone fetch of a corrupt object: exit %d, want 200", standalone["fetch of a corrupt object"].code)
	}

	// systemd's readiness protocol, on a socket the agent (postgres) can write.
	notifyPath := filepath.Join(c.MkDir(t, "notify"), "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	os.Chmod(notifyPath, 0o777)
	ag := startAgent(t, bin, env, c.Dir, addr, []string{"NOTIFY_SOCKET=" + notifyPath})
	notify.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	if n, err := notify.Read(buf); err != nil || string(buf[:n]) != "READY=1" {
		t.Errorf("sd_notify: %q %v", buf[:n], err)
	}
	served := func() float64 {
		m := ag.metrics(t)
		return m["walden_wal_pushed_total"] + m["walden_wal_push_failures_total"] + m["walden_wal_fetched_total"] + m["walden_wal_fetch_not_found_total"] + m["walden_wal_fetch_failures_total"]
	}
	for i, s := range steps {
		got, want := run(s), standalone[s.name]
		if served() != float64(i+1) {
			t.Fatalf("%s: not served by the agent (%v requests served)", s.name, served())
		}
		if got.code != want.code || got.stdout != want.stdout || normalizeRun(got.stderr) != normalizeRun(want.stderr) {
			t.Errorf("%s differs through the agent:\nstandalone exit %d stdout %q\n%s\nagent exit %d stdout %q\n%s",
				s.name, want.code, want.stdout, want.stderr, got.code, got.stdout, got.stderr)
		}
		if got.stderr != "" && !strings.Contains(got.stderr, "pid="+strconv.Itoa(got.pid)) {
			t.Errorf("%s: the agent's lines do not carry the client's pid %d:\n%s", s.name, got.pid, got.stderr)
		}
	}
	b, err := os.ReadFile(filepath.Join(c.Dir, "pg_wal", "RECOVERYXLOG"))
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("fetched file differs: %v", err)
	}

	// Fallbacks: another configuration, a relative path from elsewhere.
	before := served()
	os.Remove(stored)
	_, errOut, code, _ := runWalden(t, []string{"AWS_PROFILE=elsewhere"}, c.Dir, bin, "--envdir", env, "wal-push", "pg_wal/"+seg)
	if code != 0 || !strings.Contains(errOut, "completed archiving") {
		t.Fatalf("push with another configuration: %d\n%s", code, errOut)
	}
	os.Remove(stored)
	_, errOut, code, _ = runWalden(t, nil, c.Base, bin, "--envdir", env, "wal-push", "data/pg_wal/"+seg)
	if code != 0 || !strings.Contains(errOut, `Uploading "data/pg_wal/`+seg) {
		t.Fatalf("push from another directory: %d\n%s", code, errOut)
	}
	if served() != before {
		t.Fatalf("the agent served a request it should have refused (%v, was %v)", served(), before)
	}
	if _, err := os.Stat(stored); err != nil {
		t.Fatalf("fallback push stored nothing: %v", err)
	}
	ag.stop(t)
	if _, err := os.Stat(filepath.Join(c.Base, "run", "agent.sock")); !os.IsNotExist(err) {
		t.Errorf("socket left after stop: %v", err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestAgentLogFileIsAppendedAndReopenedAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.log")
	os.WriteFile(path, []byte("earlier\n"), 0o600)
	var r reopenFile
	if err := r.Reopen(path); err != nil {
		t.Fatal(err)
	}
	r.Write([]byte("one\n"))
	os.Rename(path, path+".1")
	if err := r.Reopen(path); err != nil {
		t.Fatal(err)
	}
	r.Write([]byte("two\n"))
	r.Close()
	r.Write([]byte("dropped\n"))
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "earlier\none\n" || string(cur) != "two\n" {
		t.Fatalf("rotated %q, current %q", old, cur)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatalf("new log file mode %v", fi.Mode().Perm())
	}
	if err := r.Reopen(filepath.Join(dir, "missing", "agent.log")); err == nil {
		t.Fatal("unopenable path accepted")
	}
}

func TestReloadedEnvironmentFollowsTheEnvdir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "WALDEN_TEST_KEPT"), []byte("a\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "WALDEN_TEST_REMOVED"), []byte("b\n"), 0o644)
	t.Setenv("WALDEN_TEST_KEPT", "a")
	t.Setenv("WALDEN_TEST_REMOVED", "b")
	t.Setenv("WALDEN_TEST_OUTSIDE", "c")
	pr := &agentProc{envdir: envdirArg([]string{"--terse", "--envdir=" + dir}), envSet: map[string]bool{"WALDEN_TEST_KEPT": true, "WALDEN_TEST_REMOVED": true}}
	if pr.envdir != dir {
		t.Fatalf("envdir %q", pr.envdir)
	}
	os.Remove(filepath.Join(dir, "WALDEN_TEST_REMOVED"))
	os.WriteFile(filepath.Join(dir, "WALDEN_TEST_KEPT"), []byte("changed\n"), 0o644)
	env, set, err := pr.readEnv()
	if err != nil {
		t.Fatal(err)
	}
	if env["WALDEN_TEST_KEPT"] != "changed" || env["WALDEN_TEST_OUTSIDE"] != "c" {
		t.Fatalf("env %v", env)
	}
	if _, ok := env["WALDEN_TEST_REMOVED"]; ok {
		t.Fatal("a variable whose envdir file was removed survived the reload")
	}
	if v := os.Getenv("WALDEN_TEST_KEPT"); v != "a" {
		t.Fatalf("readEnv changed the process environment: %q", v)
	}
	pr.applyEnv(env, set)
	if _, ok := os.LookupEnv("WALDEN_TEST_REMOVED"); ok || os.Getenv("WALDEN_TEST_KEPT") != "changed" || os.Getenv("WALDEN_TEST_OUTSIDE") != "c" {
		t.Fatal("applyEnv did not make the environment match")
	}
}
