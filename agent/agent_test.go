package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/walden-pg/walden/agent/fastpath"
	"github.com/walden-pg/walden/agent/fastpath/server"
	"github.com/walden-pg/walden/internal/syncbuf"
	"github.com/walden-pg/walden/schedule"
	"github.com/walden-pg/walden/walelog"
)

// fake is a Backuper whose runs the test can hold, fail or count.
type fake struct {
	mu       sync.Mutex
	runs     int
	hold     chan struct{} // when set, Backup waits for it (or ctx)
	started  chan struct{}
	fail     error
	busy     bool
	retained int
	retains  int
	latest   *Backup
	ctxErr   error
}

func newFake() *fake { return &fake{started: make(chan struct{}, 10)} }

func (f *fake) Lock() (func(), error) {
	if f.busy {
		return nil, fmt.Errorf("pid 7: %w", ErrBusy)
	}
	return func() {}, nil
}

func (f *fake) Backup(ctx context.Context, progress func(Progress)) (Backup, error) {
	f.mu.Lock()
	f.runs++
	n, hold, fail := f.runs, f.hold, f.fail
	f.mu.Unlock()
	start := time.Now().UTC()
	progress(Progress{BytesRead: 1000, PartitionsDone: 1})
	f.started <- struct{}{}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			f.mu.Lock()
			f.ctxErr = ctx.Err()
			f.mu.Unlock()
			return Backup{}, fmt.Errorf("interrupted: %w", ctx.Err())
		}
	}
	if fail != nil {
		return Backup{}, fail
	}
	return Backup{Name: fmt.Sprintf("base_00000001000000000000000%d_00000040", n), Start: start, Finish: time.Now().UTC(), Size: 5 << 20, Stored: 1 << 20}, nil
}

func (f *fake) Retain(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retains++
	return f.retained, nil
}

func (f *fake) Latest(context.Context) (*Backup, error) { return f.latest, nil }

type rig struct {
	a      *Agent
	f      *fake
	log    *syncBuf
	srv    *httptest.Server
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	pgdata string
}

func start(t *testing.T, f *fake, mod func(*Options)) *rig {
	t.Helper()
	log := &syncBuf{}
	spec, err := schedule.Parse("0 0 1 1 *")
	if err != nil {
		t.Fatal(err)
	}
	pgdata := t.TempDir()
	os.MkdirAll(filepath.Join(pgdata, "pg_wal", "archive_status"), 0o755)
	o := Options{
		Config: Config{Log: walelog.New(walelog.Options{Stderr: log, Destinations: []string{"stderr"}}), Backups: f, Schedule: spec, Retain: "2"},
		PGData: pgdata,
	}
	if mod != nil {
		mod(&o)
	}
	r := &rig{f: f, log: log, done: make(chan struct{}), pgdata: pgdata}
	ready := make(chan struct{})
	o.Ready = func() { close(ready) }
	r.a = New(o)
	r.srv = httptest.NewServer(r.a.Handler())
	t.Cleanup(r.srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.a.Run(ctx); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop")
		}
	})
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("agent not ready")
	}
	return r
}

func (r *rig) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(r.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *rig) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	_, body := r.get(t, "/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			switch {
			case m.Gauge != nil:
				out[name] = m.Gauge.GetValue()
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			}
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *rig) waitLog(t *testing.T, s string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("log %q; log so far:\n%s", s, r.log.String()), func() bool { return strings.Contains(r.log.String(), s) })
}

func TestRunTakesABackupThenRetentionAndPublishesIt(t *testing.T) {
	f := newFake()
	f.retained = 1
	r := start(t, f, nil)
	before := time.Now()
	r.a.Trigger()
	r.waitLog(t, "MSG: retention applied")
	log := r.log.String()
	for _, want := range []string{"MSG: starting a base backup", "MSG: base backup complete", "state=complete", "trigger=manual", "backup=base_000000010000000000000001_00000040", "deleted=1"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	m := r.metrics(t)
	if m["walden_backup_last_success_timestamp_seconds"] < float64(before.Unix()) {
		t.Errorf("last success %v, before %v", m["walden_backup_last_success_timestamp_seconds"], before.Unix())
	}
	if m["walden_backup_last_size_bytes"] != 5<<20 || m["walden_backup_last_stored_bytes"] != 1<<20 {
		t.Errorf("sizes %v %v", m["walden_backup_last_size_bytes"], m["walden_backup_last_stored_bytes"])
	}
	if m["walden_retention_deleted_total"] != 1 || m["walden_backup_failures_total"] != 0 || m["walden_backup_running"] != 0 {
		t.Errorf("metrics %v", m)
	}
	if m["walden_agent_start_timestamp_seconds"] == 0 || m["walden_backup_next_run_timestamp_seconds"] == 0 {
		t.Errorf("start or next-run gauge unset: %v", m)
	}
}

func TestHealthzIs503BeforeTheFirstBackupAnd200After(t *testing.T) {
	r := start(t, newFake(), nil)
	code, body := r.get(t, "/healthz")
	if code != 503 || !strings.Contains(body, "no successful base backup") || strings.Count(body, "\n") != 1 {
		t.Fatalf("before: %d %q", code, body)
	}
	r.a.Trigger()
	r.waitLog(t, "MSG: base backup complete")
	code, body = r.get(t, "/healthz")
	if code != 200 || !strings.Contains(body, "base_000000010000000000000001_00000040") {
		t.Fatalf("after: %d %q", code, body)
	}
}

func TestARestartedAgentKnowsTheLatestBackupFromTheStore(t *testing.T) {
	fin := time.Now().Add(-time.Hour).UTC()
	b := &Backup{Name: "base_X_00000040", Start: fin.Add(-time.Minute), Finish: fin, Size: 10, Stored: 5}
	spec, _ := schedule.Parse("0 * * * *")
	r := start(t, newFake(), func(o *Options) { o.Initial = b; o.Schedule = spec })
	if code, body := r.get(t, "/healthz"); code != 200 {
		t.Fatalf("healthz %d %q", code, body)
	}
	if m := r.metrics(t); m["walden_backup_last_success_timestamp_seconds"] != float64(fin.UnixNano())/1e9 {
		t.Fatalf("last success %v, want %v", m["walden_backup_last_success_timestamp_seconds"], fin.Unix())
	}
}

func TestAnOverdueBackupMakesHealthz503(t *testing.T) {
	fin := time.Now().Add(-3 * 24 * time.Hour)
	spec, _ := schedule.Parse("0 0 * * *")
	r := start(t, newFake(), func(o *Options) {
		o.Initial = &Backup{Name: "base_old", Start: fin.Add(-time.Minute), Finish: fin}
		o.Schedule = spec
	})
	code, body := r.get(t, "/healthz")
	if code != 503 || !strings.Contains(body, "due by") {
		t.Fatalf("%d %q", code, body)
	}
}

func TestATriggerDuringARunIsSkippedAndLogged(t *testing.T) {
	f := newFake()
	f.hold = make(chan struct{})
	r := start(t, f, nil)
	r.a.Trigger()
	<-f.started
	if m := r.metrics(t); m["walden_backup_running"] != 1 || m["walden_backup_progress_bytes"] != 1000 {
		t.Fatalf("while running: %v", m)
	}
	r.a.Trigger()
	r.waitLog(t, "MSG: base backup skipped")
	if !strings.Contains(r.log.String(), "is still going") {
		t.Fatalf("skip reason missing:\n%s", r.log.String())
	}
	close(f.hold)
	r.waitLog(t, "MSG: base backup complete")
	if m := r.metrics(t); m["walden_backup_skipped_total"] != 1 {
		t.Fatalf("skipped_total %v", m["walden_backup_skipped_total"])
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.runs != 1 {
		t.Fatalf("%d runs", f.runs)
	}
}

func TestABackupLockHeldElsewhereSkipsTheRun(t *testing.T) {
	f := newFake()
	f.busy = true
	r := start(t, f, nil)
	r.a.Trigger()
	r.waitLog(t, "MSG: base backup skipped")
	if !strings.Contains(r.log.String(), "another base backup") || f.runs != 0 {
		t.Fatalf("runs %d log:\n%s", f.runs, r.log.String())
	}
}

func TestAFailedBackupIsCountedAndRetentionIsNotApplied(t *testing.T) {
	f := newFake()
	f.fail = errors.New("could not connect\nto the server")
	r := start(t, f, nil)
	r.a.Trigger()
	r.waitLog(t, "MSG: base backup failed")
	if !strings.Contains(r.log.String(), "DETAIL: could not connect to the server") {
		t.Fatalf("failure detail not on one line:\n%s", r.log.String())
	}
	if m := r.metrics(t); m["walden_backup_failures_total"] != 1 {
		t.Fatalf("failures %v", m["walden_backup_failures_total"])
	}
	if f.retains != 0 {
		t.Fatal("retention ran after a failed backup")
	}
	_, body := r.get(t, "/status")
	var rep Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil || rep.LastFailure == nil {
		t.Fatalf("status %v %s", err, body)
	}
}

func TestStoppingCancelsTheRunningBackupPromptly(t *testing.T) {
	f := newFake()
	f.hold = make(chan struct{})
	r := start(t, f, nil)
	r.a.Trigger()
	<-f.started
	t0 := time.Now()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if time.Since(t0) > 5*time.Second {
		t.Fatalf("stop took %v", time.Since(t0))
	}
	if !errors.Is(f.ctxErr, context.Canceled) {
		t.Fatalf("backup context: %v", f.ctxErr)
	}
	log := r.log.String()
	if !strings.Contains(log, "MSG: base backup cancelled") || strings.Contains(log, "MSG: base backup failed") || !strings.Contains(log, "MSG: agent stopped") {
		t.Fatalf("log:\n%s", log)
	}
}

func TestApplySwitchesScheduleAndLogger(t *testing.T) {
	r := start(t, newFake(), nil)
	hourly, _ := schedule.Parse("0 * * * *")
	other := &syncBuf{}
	c := *r.a.config()
	c.Schedule, c.Log = hourly, walelog.New(walelog.Options{Stderr: other, Destinations: []string{"stderr"}})
	if err := r.a.Apply(c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "next run within the hour", func() bool { return time.Until(r.a.nextRun()) <= time.Hour })
	r.a.Trigger()
	waitFor(t, "log on the new logger", func() bool { return strings.Contains(other.String(), "base backup complete") })
}

func TestFastPathOutcomesAreCounted(t *testing.T) {
	dir, _ := os.MkdirTemp("", "ag")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s")
	ln, err := server.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, newFake(), func(o *Options) {
		o.Socket = ln
		o.Fingerprint = func() string { return "fp" }
		o.Handler = func(_ context.Context, req *fastpath.Request, _, _ io.Writer) (server.Reply, error) {
			switch req.Positionals[0] {
			case "ok":
				return server.Reply{}, nil
			case "missing":
				return server.Reply{Status: 1, NotFound: true}, nil
			}
			return server.Reply{Status: 1}, nil
		}
	})
	for _, c := range []struct{ cmd, arg string }{{"wal-push", "ok"}, {"wal-push", "ok"}, {"wal-push", "bad"}, {"wal-fetch", "ok"}, {"wal-fetch", "missing"}, {"wal-fetch", "bad"}} {
		if _, err := fastpath.Do(context.Background(), path, &fastpath.Request{Fingerprint: "fp", Command: c.cmd, Positionals: []string{c.arg}}, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	m := r.metrics(t)
	want := map[string]float64{"walden_wal_pushed_total": 2, "walden_wal_push_failures_total": 1, "walden_wal_fetched_total": 1, "walden_wal_fetch_not_found_total": 1, "walden_wal_fetch_failures_total": 1}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

func TestArchiveLagIsTheAgeOfTheOldestReadyFile(t *testing.T) {
	pgdata := t.TempDir()
	st := filepath.Join(pgdata, "pg_wal", "archive_status")
	os.MkdirAll(st, 0o755)
	now := time.Now()
	if d, err := ArchiveLag(pgdata, now); err != nil || d != 0 {
		t.Fatalf("empty: %v %v", d, err)
	}
	for name, age := range map[string]time.Duration{"000000010000000000000003.ready": time.Minute, "000000010000000000000002.ready": 5 * time.Minute, "000000010000000000000001.done": time.Hour} {
		p := filepath.Join(st, name)
		os.WriteFile(p, nil, 0o644)
		os.Chtimes(p, now.Add(-age), now.Add(-age))
	}
	d, err := ArchiveLag(pgdata, now)
	if err != nil || d.Round(time.Second) != 5*time.Minute {
		t.Fatalf("lag %v %v", d, err)
	}
	if _, err := ArchiveLag(filepath.Join(pgdata, "nope"), now); err == nil {
		t.Fatal("missing directory gave no error")
	}
}

func TestReportTextNamesTheLatestBackup(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	next := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	lag := 12.0
	spec, _ := schedule.Parse("0 0 * * *")
	r := &Report{
		Now:        now,
		Latest:     &Backup{Name: "base_000000010000000000000004_00000040", Start: now.Add(-12 * time.Hour), Finish: now.Add(-12*time.Hour + 5*time.Minute), Size: 3 << 30, Stored: 700 << 20},
		Schedule:   "0 0 * * *",
		NextRun:    &next,
		Retention:  "14d",
		ArchiveLag: &lag,
	}
	r.Fill(spec)
	var b bytes.Buffer
	r.WriteText(&b)
	out := b.String()
	for _, want := range []string{"agent:          not running", "base_000000010000000000000004_00000040", "2026-11-25 00:05:00 UTC (11h55m ago)", "3GiB read", "700MiB stored",
		"health:         ok", "0 0 * * * (UTC), next run 2026-11-26 00:00:00 UTC (in 12h00m)", "retention:      14d", "archive lag:    12s"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// syncBuf collects log output written from several goroutines.
type syncBuf = syncbuf.Buffer
