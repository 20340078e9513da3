package schedule

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
)

// Trigger says why a run started.
type Trigger int

const (
	// Scheduled runs come from the cron spec.
	Scheduled Trigger = iota
	// Manual runs were asked for (SIGUSR1).
	Manual
)

func (t Trigger) String() string {
	if t == Manual {
		return "manual"
	}
	return "schedule"
}

// Job is the work of one run. ctx ends when the scheduler stops.
type Job func(ctx context.Context, t Trigger)

// Scheduler fires one Job on a Spec with gocron in singleton mode: a firing
// that comes while the previous run still goes is dropped, and Skipped is
// told about it.
type Scheduler struct {
	s       gocron.Scheduler
	ctx     context.Context
	run     Job
	skipped func(Trigger)

	mu   sync.Mutex
	job  gocron.Job
	spec *Spec

	// manual marks a RunNow in flight, so the run (or the skip) it becomes
	// can say it was asked for rather than scheduled.
	manual atomic.Bool
}

// Options are the knobs tests turn.
type Options struct {
	// StopTimeout bounds how long Stop waits for a running job.
	StopTimeout time.Duration
	// Clock replaces the wall clock (gocron's clockwork interface).
	Clock gocron.SchedulerOption
}

// Start schedules run on spec and starts the scheduler. Runs get a context
// derived from ctx.
func Start(ctx context.Context, spec *Spec, run Job, skipped func(Trigger), o Options) (*Scheduler, error) {
	sc := &Scheduler{ctx: ctx, run: run, skipped: skipped, spec: spec}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	opts := []gocron.SchedulerOption{
		gocron.WithLocation(time.UTC),
		gocron.WithStopTimeout(o.StopTimeout),
		gocron.WithMonitor(monitor{sc}),
	}
	if o.Clock != nil {
		opts = append(opts, o.Clock)
	}
	s, err := gocron.NewScheduler(opts...)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	sc.s = s
	j, err := s.NewJob(sc.definition(spec), gocron.NewTask(sc.task), sc.jobOptions()...)
	if err != nil {
		s.Shutdown()
		return nil, fmt.Errorf("schedule %s: %w", spec, err)
	}
	sc.job = j
	s.Start()
	return sc, nil
}

func (sc *Scheduler) definition(spec *Spec) gocron.JobDefinition {
	return gocron.CronJob(spec.String(), false)
}

func (sc *Scheduler) jobOptions() []gocron.JobOption {
	return []gocron.JobOption{
		gocron.WithName("base-backup"),
		gocron.WithSingletonMode(gocron.LimitModeReschedule),
		gocron.WithContext(sc.ctx),
	}
}

func (sc *Scheduler) task(ctx context.Context) {
	t := Scheduled
	if sc.manual.Swap(false) {
		t = Manual
	}
	sc.run(ctx, t)
}

// RunNow asks for a run at once; it is skipped (and reported) when a run
// is already going.
func (sc *Scheduler) RunNow() error {
	sc.mu.Lock()
	j := sc.job
	sc.mu.Unlock()
	sc.manual.Store(true)
	if err := j.RunNow(); err != nil {
		sc.manual.Store(false)
		return err
	}
	return nil
}

// SetSpec replaces the schedule; a run in progress is not disturbed.
func (sc *Scheduler) SetSpec(spec *Spec) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	j, err := sc.s.Update(sc.job.ID(), sc.definition(spec), gocron.NewTask(sc.task), sc.jobOptions()...)
	if err != nil {
		return fmt.Errorf("schedule %s: %w", spec, err)
	}
	sc.job, sc.spec = j, spec
	return nil
}

// Spec is the schedule in force.
func (sc *Scheduler) Spec() *Spec {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.spec
}

// NextRun is the next scheduled firing (zero if unknown).
func (sc *Scheduler) NextRun() time.Time {
	sc.mu.Lock()
	j := sc.job
	sc.mu.Unlock()
	t, err := j.NextRun()
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// Stop stops firing and waits (up to the stop timeout) for a running job,
// whose context the caller is expected to have cancelled.
func (sc *Scheduler) Stop() error {
	return sc.s.Shutdown()
}

// monitor hears gocron's singleton skips, which it reports nowhere else.
type monitor struct{ sc *Scheduler }

func (m monitor) IncrementJob(_ uuid.UUID, _ string, _ []string, status gocron.JobStatus) {
	if status != gocron.SingletonRescheduled || m.sc.skipped == nil {
		return
	}
	t := Scheduled
	if m.sc.manual.Swap(false) {
		t = Manual
	}
	m.sc.skipped(t)
}

func (monitor) RecordJobTiming(time.Time, time.Time, uuid.UUID, string, []string) {}
