package schedule

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseAcceptsFiveFieldsAndDescriptors(t *testing.T) {
	for _, e := range []string{"0 0 * * *", "*/5 * * * *", "30 2 * * 1-5", "@daily", " 0 3 * * 0 "} {
		if _, err := Parse(e); err != nil {
			t.Errorf("%q: %v", e, err)
		}
	}
}

func TestParseRefusesBadSpecsWithAReason(t *testing.T) {
	for _, e := range []string{"", "61 * * * *", "0 0 * *", "0 0 0 * * *", "every night", "TZ=Europe/Paris 0 0 * * *", "CRON_TZ=UTC 0 0 * * *"} {
		_, err := Parse(e)
		if err == nil {
			t.Errorf("%q: accepted", e)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: multi-line error %q", e, err)
		}
	}
}

func TestNextIsUTCWhateverTheLocalZone(t *testing.T) {
	s, _ := Parse("0 0 * * *")
	cet := time.FixedZone("CET", 3600)
	from := time.Date(2026, 11, 25, 23, 30, 0, 0, cet) // 22:30 UTC
	if got, want := s.Next(from), utc("2026-11-26T00:00:00Z"); !got.Equal(want) || got.Location() != time.UTC {
		t.Fatalf("next %v, want %v", got, want)
	}
}

func TestIntervalIsTheGapBetweenTheNextTwoFirings(t *testing.T) {
	s, _ := Parse("0 0 * * *")
	if got := s.Interval(utc("2026-11-25T12:00:00Z")); got != 24*time.Hour {
		t.Fatalf("daily interval %v", got)
	}
	wd, _ := Parse("0 0 * * 1-5")
	// From Friday noon the next firings are Monday and Tuesday.
	if got := wd.Interval(utc("2026-11-27T12:00:00Z")); got != 24*time.Hour {
		t.Fatalf("weekday interval from Friday %v", got)
	}
	// From Thursday noon: Friday then Monday.
	if got := wd.Interval(utc("2026-11-26T12:00:00Z")); got != 72*time.Hour {
		t.Fatalf("weekday interval from Thursday %v", got)
	}
}

func TestDeadlineAllowsTheNextRunItsDurationAndAMargin(t *testing.T) {
	daily, _ := Parse("0 0 * * *")
	start, finish := utc("2026-11-25T00:00:00Z"), utc("2026-11-25T02:00:00Z")
	// Next firing 26th 00:00, plus 2h of backup, plus max(1h, 2.4h) = 2.4h.
	want := utc("2026-11-26T04:24:00Z")
	if got := daily.Deadline(start, finish); !got.Equal(want) {
		t.Fatalf("deadline %v, want %v", got, want)
	}
	minutely, _ := Parse("* * * * *")
	start = utc("2026-11-25T10:00:00Z")
	if got, want := minutely.Deadline(start, start.Add(10*time.Second)), utc("2026-11-25T11:01:10Z"); !got.Equal(want) {
		t.Fatalf("minutely deadline %v, want %v (margin at least an hour)", got, want)
	}
	// A hand-made backup at 15:00 is good until the nightly one is due.
	if got, want := daily.Deadline(utc("2026-11-25T15:00:00Z"), utc("2026-11-25T15:10:00Z")), utc("2026-11-26T02:34:00Z"); !got.Equal(want) {
		t.Fatalf("manual backup deadline %v, want %v", got, want)
	}
}

type recorder struct {
	mu      sync.Mutex
	runs    []Trigger
	skips   []Trigger
	started chan Trigger
	release chan struct{}
}

func newRecorder() *recorder {
	return &recorder{started: make(chan Trigger, 10), release: make(chan struct{})}
}

func (r *recorder) job(ctx context.Context, t Trigger) {
	r.mu.Lock()
	r.runs = append(r.runs, t)
	r.mu.Unlock()
	r.started <- t
	select {
	case <-r.release:
	case <-ctx.Done():
	}
}

func (r *recorder) skip(t Trigger) {
	r.mu.Lock()
	r.skips = append(r.skips, t)
	r.mu.Unlock()
}

func wait(t *testing.T, ch chan Trigger) Trigger {
	t.Helper()
	select {
	case tr := <-ch:
		return tr
	case <-time.After(5 * time.Second):
		t.Fatal("no run started")
	}
	return 0
}

func TestRunNowRunsAManualJob(t *testing.T) {
	r := newRecorder()
	close(r.release)
	spec, _ := Parse("0 0 1 1 *")
	s, err := Start(context.Background(), spec, r.job, r.skip, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := s.RunNow(); err != nil {
		t.Fatal(err)
	}
	if tr := wait(t, r.started); tr != Manual {
		t.Fatalf("trigger %v", tr)
	}
}

func TestOverlappingRunIsSkippedAndReported(t *testing.T) {
	r := newRecorder()
	spec, _ := Parse("0 0 1 1 *")
	s, err := Start(context.Background(), spec, r.job, r.skip, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	s.RunNow()
	wait(t, r.started)
	if err := s.RunNow(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.skips)
		r.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second run was not reported as skipped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(r.release)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.runs) != 1 || r.skips[0] != Manual {
		t.Fatalf("runs %v skips %v", r.runs, r.skips)
	}
}

func TestScheduledFiringRunsTheJobAndStopCancelsIt(t *testing.T) {
	clock := clockwork.NewFakeClockAt(utc("2026-11-25T23:59:00Z"))
	r := newRecorder()
	spec, _ := Parse("0 0 * * *")
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, spec, r.job, r.skip, Options{Clock: gocron.WithClock(clock)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !s.NextRun().Equal(utc("2026-11-26T00:00:00Z")) {
		if time.Now().After(deadline) {
			t.Fatalf("next run %v", s.NextRun())
		}
		time.Sleep(10 * time.Millisecond)
	}
	clock.Advance(61 * time.Second)
	if tr := wait(t, r.started); tr != Scheduled {
		t.Fatalf("trigger %v", tr)
	}
	cancel()
	done := make(chan error)
	go func() { done <- s.Stop() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after the job's context ended")
	}
}

func TestSetSpecMovesTheNextRun(t *testing.T) {
	clock := clockwork.NewFakeClockAt(utc("2026-11-25T10:00:00Z"))
	r := newRecorder()
	daily, _ := Parse("0 0 * * *")
	s, err := Start(context.Background(), daily, r.job, r.skip, Options{Clock: gocron.WithClock(clock)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	hourly, _ := Parse("0 * * * *")
	if err := s.SetSpec(hourly); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !s.NextRun().Equal(utc("2026-11-25T11:00:00Z")) {
		if time.Now().After(deadline) {
			t.Fatalf("next run %v after SetSpec", s.NextRun())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.Spec() != hourly {
		t.Fatal("Spec not replaced")
	}
}
