package agent

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/walden-pg/walden/schedule"
	"github.com/walden-pg/walden/walelog"
)

// Checker runs walden verify and restore drills for the agent. The
// command wires the real ones; tests may use fakes.
type Checker interface {
	// Verify checks the archive and says how many problems it found.
	Verify(ctx context.Context) (problems int, err error)
	// Drill restores LATEST into a scratch directory and replays the
	// archive; a cancelled ctx must stop the server and clean up.
	Drill(ctx context.Context) (replay time.Duration, err error)
}

// Checks configures scheduled verifies and drills; a nil schedule is off.
type Checks struct {
	Checker        Checker
	VerifySchedule *schedule.Spec
	DrillSchedule  *schedule.Spec
}

// CheckOutcome is the result of the last verify or drill.
type CheckOutcome struct {
	Time          time.Time `json:"time"`
	OK            bool      `json:"ok"`
	Problems      int       `json:"problems,omitempty"`
	Error         string    `json:"error,omitempty"`
	Seconds       float64   `json:"duration_seconds"`
	ReplaySeconds float64   `json:"replay_seconds,omitempty"`
}

// ChecksReport is the verify part of /status.
type ChecksReport struct {
	VerifySchedule string        `json:"verify_schedule"`
	DrillSchedule  string        `json:"drill_schedule"`
	LastVerify     *CheckOutcome `json:"last_verify,omitempty"`
	LastDrill      *CheckOutcome `json:"last_drill,omitempty"`
}

// checkState is the agent's verify and drill bookkeeping, guarded by a.mu;
// run serializes verify and drill (one waits for the other).
type checkState struct {
	run                   sync.Mutex
	lastVerify, lastDrill *CheckOutcome
	cancel                context.CancelFunc // of the running check
	done                  chan struct{}
	scheds                []*schedule.Scheduler

	verifyOK, verifyProblems, drillOK, drillDuration, drillReplay prometheus.Gauge
}

func (a *Agent) registerCheckMetrics() {
	g := func(name, help string) prometheus.Gauge {
		m := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		a.m.reg.MustRegister(m)
		return m
	}
	c := &a.ck
	c.verifyOK = g("walden_verify_last_success_timestamp_seconds", "When the last verify that found no problem finished.")
	c.verifyProblems = g("walden_verify_problems", "Problems the last verify found.")
	c.drillOK = g("walden_drill_last_success_timestamp_seconds", "When the last successful restore drill finished.")
	c.drillDuration = g("walden_drill_duration_seconds", "How long the last successful restore drill took.")
	c.drillReplay = g("walden_drill_replay_seconds", "How long WAL replay took in the last successful restore drill.")
}

// startChecks schedules verify and drill runs.
func (a *Agent) startChecks(ctx context.Context) error {
	ck := a.o.Checks
	if ck == nil || ck.Checker == nil {
		return nil
	}
	for _, j := range []struct {
		kind string
		spec *schedule.Spec
	}{{"verify", ck.VerifySchedule}, {"drill", ck.DrillSchedule}} {
		if j.spec == nil {
			continue
		}
		kind := j.kind
		s, err := schedule.Start(ctx, j.spec, func(ctx context.Context, t schedule.Trigger) { a.runCheck(ctx, kind) },
			func(schedule.Trigger) {}, schedule.Options{StopTimeout: a.o.StopGrace, Clock: a.o.Clock})
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.ck.scheds = append(a.ck.scheds, s)
		a.mu.Unlock()
	}
	return nil
}

func (a *Agent) stopChecks() {
	a.mu.Lock()
	scheds := a.ck.scheds
	a.mu.Unlock()
	for _, s := range scheds {
		s.Stop()
	}
}

// preemptChecks is called once a backup has started: the backup wins, so
// a running verify or drill is cancelled and waited for (the drill stops
// its server and removes its scratch directory), and retried next time.
func (a *Agent) preemptChecks() {
	a.mu.Lock()
	cancel, done := a.ck.cancel, a.ck.done
	a.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func checkFields(kind, state string, extra ...walelog.Field) []walelog.Field {
	return append([]walelog.Field{walelog.F("action", "agent-"+kind), walelog.F("state", state)}, extra...)
}

// runCheck runs one verify or drill, after any other one, unless a base
// backup is running.
func (a *Agent) runCheck(ctx context.Context, kind string) {
	log := a.Log()
	a.ck.run.Lock()
	defer a.ck.run.Unlock()
	a.mu.Lock()
	if !a.runningSince.IsZero() {
		a.mu.Unlock()
		log.Warn(walelog.WaldenName, kind+" skipped", "A base backup is running; it runs at its next scheduled time.", "", checkFields(kind, "skip")...)
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	a.ck.cancel, a.ck.done = cancel, done
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.ck.cancel, a.ck.done = nil, nil
		a.mu.Unlock()
		cancel()
		close(done)
	}()

	start := a.o.Now()
	log.Info(walelog.WaldenName, "starting "+kind, "", "", checkFields(kind, "begin")...)
	out := &CheckOutcome{}
	var err error
	var replay time.Duration
	if kind == "verify" {
		out.Problems, err = a.o.Checks.Checker.Verify(cctx)
	} else {
		replay, err = a.o.Checks.Checker.Drill(cctx)
	}
	if cctx.Err() != nil && err != nil {
		log.Warn(walelog.WaldenName, kind+" cancelled", "A base backup is due or the agent is stopping; it runs again at its next scheduled time.", "", checkFields(kind, "cancelled")...)
		return
	}
	end := a.o.Now()
	out.Time, out.Seconds, out.ReplaySeconds = end, end.Sub(start).Seconds(), replay.Seconds()
	out.OK = err == nil && out.Problems == 0
	if err != nil {
		out.Error = oneLine(err.Error())
	}
	a.mu.Lock()
	if kind == "verify" {
		a.ck.lastVerify = out
	} else {
		a.ck.lastDrill = out
	}
	a.mu.Unlock()
	fields := checkFields(kind, "complete", walelog.F("duration", fmt.Sprintf("%.3f", out.Seconds)), walelog.F("problems", strconv.Itoa(out.Problems)))
	switch {
	case kind == "verify" && err == nil:
		a.ck.verifyProblems.Set(float64(out.Problems))
		if out.OK {
			a.ck.verifyOK.Set(unix(end))
			log.Info(walelog.WaldenName, "verify complete", fmt.Sprintf("No problems, %s.", Human(end.Sub(start))), "", fields...)
		} else {
			log.Error(walelog.WaldenName, "verify found problems", fmt.Sprintf("%d problem(s); run walden verify for the list.", out.Problems), "", checkFields(kind, "failed", fields[2:]...)...)
		}
	case kind == "drill" && err == nil:
		a.ck.drillOK.Set(unix(end))
		a.ck.drillDuration.Set(out.Seconds)
		a.ck.drillReplay.Set(out.ReplaySeconds)
		log.Info(walelog.WaldenName, "drill complete", fmt.Sprintf("LATEST restored and replayed in %s (replay %s).", Human(end.Sub(start)), Human(replay)), "", fields...)
	default:
		log.Error(walelog.WaldenName, kind+" failed", out.Error, "", checkFields(kind, "failed")...)
	}
}

// checksHealth is unhealthy when the last verify found problems.
func (a *Agent) checksHealth() (bool, string) {
	a.mu.Lock()
	v := a.ck.lastVerify
	a.mu.Unlock()
	if v != nil && !v.OK {
		if v.Error != "" {
			return false, "the last verify failed: " + v.Error
		}
		return false, fmt.Sprintf("the last verify found %d problem(s)", v.Problems)
	}
	return true, ""
}

func (a *Agent) checksReport() *ChecksReport {
	ck := a.o.Checks
	if ck == nil || ck.Checker == nil {
		return nil
	}
	spec := func(s *schedule.Spec) string {
		if s == nil {
			return "off"
		}
		return s.String()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return &ChecksReport{VerifySchedule: spec(ck.VerifySchedule), DrillSchedule: spec(ck.DrillSchedule), LastVerify: a.ck.lastVerify, LastDrill: a.ck.lastDrill}
}

func (r *ChecksReport) writeText(w io.Writer) {
	if r == nil {
		return
	}
	line := func(k, v string) { fmt.Fprintf(w, "%-16s%s\n", k+":", v) }
	for _, c := range []struct {
		name, sched string
		o           *CheckOutcome
	}{{"last verify", r.VerifySchedule, r.LastVerify}, {"last drill", r.DrillSchedule, r.LastDrill}} {
		v := "none yet"
		if o := c.o; o != nil {
			v = o.Time.UTC().Format(timeFmt) + ": "
			switch {
			case o.OK:
				v += "passed"
			case o.Error != "":
				v += "FAILED: " + o.Error
			default:
				v += fmt.Sprintf("FAILED: %d problem(s)", o.Problems)
			}
		}
		line(c.name, v+" (schedule "+c.sched+")")
	}
}
