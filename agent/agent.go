package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/walden-pg/walden/agent/fastpath"
	"github.com/walden-pg/walden/agent/fastpath/server"
	"github.com/walden-pg/walden/schedule"
	"github.com/walden-pg/walden/walelog"
)

// Config is what a SIGHUP can change while the agent runs.
type Config struct {
	Log      *walelog.Logger
	Backups  Backuper
	Schedule *schedule.Spec
	Retain   string // as configured, for display
}

// Options configure an Agent.
type Options struct {
	Config
	PGData  string
	Initial *Backup // newest backup found in the store at start-up

	Metrics     net.Listener // /metrics, /healthz, /status; nil: none
	Socket      net.Listener // the WAL fast path; nil: none
	Fingerprint func() string
	Handler     server.Handler

	// StopGrace bounds how long a stop waits for a cancelled backup to
	// clean up (default 20s, so that with the scheduler's own 2s and the
	// listeners' shutdown the process is gone within 30s).
	StopGrace time.Duration
	Now       func() time.Time
	Clock     gocron.SchedulerOption // tests
	Ready     func()                 // called once everything serves

	Checks *Checks // scheduled verify and restore drills; nil: none

	PushAhead *PushAhead // archives .ready segments ahead of archive_command; nil: off

	FetchAhead *Prefetcher // fetches WAL ahead of replay for fast-path wal-fetch; nil: none
}

// Agent runs the schedule and serves state until its context ends.
type Agent struct {
	o   Options
	cfg atomic.Pointer[Config]
	m   *metrics
	pid int

	mu           sync.Mutex
	started      time.Time
	ready        bool
	last         *Backup
	lastFailure  *Failure
	runningSince time.Time
	progress     Progress
	sched        *schedule.Scheduler
	ck           checkState
}

// New prepares an agent; Run starts it.
func New(o Options) *Agent {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 20 * time.Second
	}
	a := &Agent{o: o, pid: os.Getpid(), last: o.Initial}
	c := o.Config
	a.cfg.Store(&c)
	a.m = newMetrics(func() (time.Duration, error) { return ArchiveLag(o.PGData, a.o.Now()) },
		func() (int, error) { return ArchiveReady(o.PGData) }, a.nextRun)
	a.m.setLast(o.Initial)
	a.registerCheckMetrics()
	if o.PushAhead != nil {
		o.PushAhead.register(a.m.reg)
	}
	if o.FetchAhead != nil {
		o.FetchAhead.register(a.m.reg)
	}
	return a
}

func (a *Agent) config() *Config { return a.cfg.Load() }

// Log is the logger of the configuration in force.
func (a *Agent) Log() *walelog.Logger { return a.config().Log }

// Apply replaces the configuration; a backup already running finishes
// with the one it started with.
func (a *Agent) Apply(c Config) error {
	a.mu.Lock()
	sched := a.sched
	a.mu.Unlock()
	if sched != nil && sched.Spec().String() != c.Schedule.String() {
		if err := sched.SetSpec(c.Schedule); err != nil {
			return err
		}
	}
	a.cfg.Store(&c)
	return nil
}

// Trigger asks for a backup now (SIGUSR1). It is skipped, and logged as
// such, when one is running.
func (a *Agent) Trigger() {
	a.mu.Lock()
	sched := a.sched
	a.mu.Unlock()
	if sched == nil {
		return
	}
	if err := sched.RunNow(); err != nil {
		a.Log().Warn(walelog.WaldenName, "could not start a base backup now", err.Error(), "",
			walelog.F("action", "agent-backup"), walelog.F("state", "skip"), walelog.F("trigger", schedule.Manual.String()))
	}
}

func (a *Agent) nextRun() time.Time {
	a.mu.Lock()
	sched := a.sched
	a.mu.Unlock()
	if sched == nil {
		return time.Time{}
	}
	return sched.NextRun()
}

// Run starts the schedule and the listeners, then blocks until ctx ends,
// and stops: the running backup is cancelled and waited for (StopGrace).
func (a *Agent) Run(ctx context.Context) error {
	now := a.o.Now()
	a.mu.Lock()
	a.started = now
	a.mu.Unlock()
	a.m.agentStart.Set(unix(now))

	sched, err := schedule.Start(ctx, a.config().Schedule, a.runBackup, a.skipped,
		schedule.Options{StopTimeout: a.o.StopGrace, Clock: a.o.Clock})
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.sched = sched
	a.mu.Unlock()
	if err := a.startChecks(ctx); err != nil {
		sched.Stop()
		return err
	}

	var srv *http.Server
	if a.o.Metrics != nil {
		srv = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(a.o.Metrics)
	}
	var fp *server.Server
	if a.o.Socket != nil {
		fp = server.Serve(a.o.Socket, a.o.Fingerprint, a.countWAL(a.o.Handler))
	}
	paDone := make(chan struct{})
	if a.o.PushAhead != nil {
		go func() { defer close(paDone); a.o.PushAhead.Run(ctx) }()
	} else {
		close(paDone)
	}
	a.mu.Lock()
	a.ready = true
	a.mu.Unlock()
	a.Log().Info(walelog.WaldenName, "agent started",
		fmt.Sprintf("Base backups of %s on schedule %q (UTC), next at %s; retention %s.", a.o.PGData, a.config().Schedule, a.nextRun().Format(timeFmt), a.config().Retain),
		"", walelog.F("action", "agent"), walelog.F("state", "ready"), walelog.F("metrics", addr(a.o.Metrics)), walelog.F("socket", addr(a.o.Socket)))
	if a.o.Ready != nil {
		a.o.Ready()
	}

	<-ctx.Done()
	a.Log().Info(walelog.WaldenName, "agent stopping", "", "", walelog.F("action", "agent"), walelog.F("state", "stopping"))
	var wg sync.WaitGroup
	if fp != nil {
		wg.Add(1)
		go func() { defer wg.Done(); fp.Close(5 * time.Second) }()
	}
	// The job's context derives from ctx, so a running backup is already
	// being cancelled; Stop waits for it up to StopGrace.
	a.stopChecks()
	if err := sched.Stop(); err != nil {
		a.Log().Warn(walelog.WaldenName, "the running base backup did not stop in time", err.Error(), "",
			walelog.F("action", "agent"), walelog.F("state", "stopping"))
	}
	wg.Wait()
	<-paDone
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(sctx)
		cancel()
	}
	a.Log().Info(walelog.WaldenName, "agent stopped", "", "", walelog.F("action", "agent"), walelog.F("state", "stopped"))
	return nil
}

func addr(l net.Listener) string {
	if l == nil {
		return "none"
	}
	return l.Addr().String()
}

// countWAL wraps the fast-path handler with the WAL counters.
func (a *Agent) countWAL(h server.Handler) server.Handler {
	return func(ctx context.Context, req *fastpath.Request, stdout, stderr io.Writer) (server.Reply, error) {
		rep, err := h(ctx, req, stdout, stderr)
		if err != nil {
			return rep, err
		}
		switch req.Command {
		case "wal-push":
			if rep.Status == 0 {
				a.m.walPushed.Inc()
			} else {
				a.m.walPushFailed.Inc()
			}
		case "wal-fetch":
			switch {
			case rep.Status == 0:
				a.m.walFetched.Inc()
			case rep.NotFound:
				a.m.walFetchMissing.Inc()
			default:
				a.m.walFetchFailed.Inc()
			}
		}
		return rep, nil
	}
}

// Health is /healthz's verdict: the agent has started, and backups are
// fresh (Assess).
func (a *Agent) Health() (bool, string) {
	a.mu.Lock()
	ready, last := a.ready, a.last
	a.mu.Unlock()
	if !ready {
		return false, "the agent is starting"
	}
	if ok, why := a.checksHealth(); !ok {
		return false, why
	}
	return Assess(a.config().Schedule, last, a.o.Now())
}

// Report is the agent's status document.
func (a *Agent) Report() *Report {
	now := a.o.Now()
	c := a.config()
	a.mu.Lock()
	started := a.started
	r := &Report{
		Now:       now,
		Agent:     AgentInfo{Running: true, Pid: a.pid, Started: &started, Address: addr(a.o.Metrics)},
		Latest:    a.last,
		Schedule:  c.Schedule.String(),
		Retention: c.Retain,
		PGData:    a.o.PGData,
	}
	if !a.runningSince.IsZero() {
		since, p := a.runningSince, a.progress
		r.BackupRunning, r.RunningSince, r.Progress = true, &since, &p
	}
	r.LastFailure = a.lastFailure
	a.mu.Unlock()
	r.Checks = a.checksReport()
	if n := a.nextRun(); !n.IsZero() {
		r.NextRun = &n
	}
	if lag, err := ArchiveLag(a.o.PGData, now); err != nil {
		r.ArchiveLagError = err.Error()
	} else {
		s := lag.Seconds()
		r.ArchiveLag = &s
	}
	r.Fill(c.Schedule)
	if ok, why := a.Health(); !ok {
		r.Healthy, r.Health = ok, why
	}
	return r
}

// Handler serves /metrics, /healthz and /status.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ok, why := a.Health()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, why)
			return
		}
		fmt.Fprintln(w, "ok: "+why)
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.Report())
	})
	return mux
}
