package agent

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeChecker is a Checker whose drills the test can hold.
type fakeChecker struct {
	mu       sync.Mutex
	problems int
	hold     bool
	started  chan struct{}
	cleaned  bool // a held drill finished its cleanup after cancellation
}

func (c *fakeChecker) Verify(context.Context) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.problems, nil
}

func (c *fakeChecker) Drill(ctx context.Context) (time.Duration, error) {
	c.mu.Lock()
	hold := c.hold
	c.mu.Unlock()
	c.started <- struct{}{}
	if hold {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // stopping the server, removing scratch
		c.mu.Lock()
		c.cleaned = true
		c.mu.Unlock()
		return 0, ctx.Err()
	}
	return 1500 * time.Millisecond, nil
}

func (c *fakeChecker) isCleaned() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.cleaned }

func TestADueBackupCancelsARunningDrillWhichRunsAgainNextTime(t *testing.T) {
	ck := &fakeChecker{hold: true, started: make(chan struct{}, 4)}
	r := start(t, newFake(), func(o *Options) { o.Checks = &Checks{Checker: ck} })
	drillDone := make(chan struct{})
	go func() { r.a.runCheck(context.Background(), "drill"); close(drillDone) }()
	<-ck.started
	r.a.Trigger()
	select {
	case <-r.f.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the backup did not start")
	}
	if !ck.isCleaned() {
		t.Error("the backup started before the cancelled drill had cleaned up")
	}
	<-drillDone
	r.waitLog(t, "MSG: drill cancelled")
	if m := r.metrics(t); m["walden_drill_last_success_timestamp_seconds"] != 0 {
		t.Errorf("a cancelled drill counted as success: %v", m)
	}
	r.waitLog(t, "MSG: base backup complete")

	ck.mu.Lock()
	ck.hold = false
	ck.mu.Unlock()
	r.a.runCheck(context.Background(), "drill")
	r.waitLog(t, "MSG: drill complete")
	m := r.metrics(t)
	if m["walden_drill_last_success_timestamp_seconds"] == 0 || m["walden_drill_replay_seconds"] != 1.5 || m["walden_drill_duration_seconds"] < 0 {
		t.Errorf("drill metrics: %v", m)
	}
	if _, body := r.get(t, "/status"); !strings.Contains(body, `"last_drill":{`) {
		t.Errorf("/status lacks the drill: %s", body)
	}
}

func TestAVerifyThatFindsProblemsMakesHealthz503(t *testing.T) {
	ck := &fakeChecker{problems: 3, started: make(chan struct{}, 4)}
	now := time.Now().UTC()
	r := start(t, newFake(), func(o *Options) {
		o.Checks = &Checks{Checker: ck}
		o.Initial = &Backup{Name: "base_000000010000000000000002_00000040", Start: now.Add(-time.Minute), Finish: now}
	})
	if code, body := r.get(t, "/healthz"); code != 200 {
		t.Fatalf("healthz before verify: %d %s", code, body)
	}
	r.a.runCheck(context.Background(), "verify")
	code, body := r.get(t, "/healthz")
	if code != 503 || !strings.Contains(body, "the last verify found 3 problem(s)") {
		t.Errorf("healthz after a failing verify: %d %s", code, body)
	}
	if m := r.metrics(t); m["walden_verify_problems"] != 3 || m["walden_verify_last_success_timestamp_seconds"] != 0 {
		t.Errorf("metrics: %v", m)
	}
	var b strings.Builder
	r.a.Report().WriteText(&b)
	if !strings.Contains(b.String(), "FAILED: 3 problem(s)") {
		t.Errorf("status text:\n%s", b.String())
	}
	ck.mu.Lock()
	ck.problems = 0
	ck.mu.Unlock()
	r.a.runCheck(context.Background(), "verify")
	if code, body := r.get(t, "/healthz"); code != 200 {
		t.Errorf("healthz after a clean verify: %d %s", code, body)
	}
	if m := r.metrics(t); m["walden_verify_problems"] != 0 || m["walden_verify_last_success_timestamp_seconds"] == 0 {
		t.Errorf("metrics: %v", m)
	}
}
