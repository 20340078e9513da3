//go:build !walden_wal

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/walden-pg/walden/agent"
	"github.com/walden-pg/walden/agent/fastpath"
	"github.com/walden-pg/walden/agent/fastpath/server"
	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/check"
	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/envdir"
	"github.com/walden-pg/walden/schedule"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

var agentCmd = &command{
	name: "agent", desc: "run in the foreground: base backups on WALDEN_BACKUP_SCHEDULE, retention, metrics, and the WAL fast path.\n\n" +
		"Signals: SIGTERM stops (a running backup is cancelled cleanly); SIGHUP re-reads the configuration and reopens WALDEN_LOG_FILE; SIGUSR1 runs a base backup now.",
	opts:   []opt{{long: "--pgdata", metavar: "PGDATA", help: "data directory to back up (default: the PGDATA variable)"}},
	maxPos: 0,
	run:    runAgent,
}

// progressVar sets how often a running backup logs its progress (a Go
// duration, default 30s); tests shorten it.
const progressVar = "WALDEN_PROGRESS_INTERVAL"

// agentProc is the agent process: its live configuration and what a SIGHUP
// replaces.
type agentProc struct {
	a       *app
	pgdata  string // absolute
	pgVar   string // --pgdata or PGDATA, for messages
	envdir  string // "" when the configuration comes from the environment only
	envSet  map[string]bool
	logFile *reopenFile
	ag      *agent.Agent

	mu       sync.Mutex
	settings *config.Settings
	fp       string
}

// runtime is what one configuration builds.
type runtime struct {
	settings *config.Settings
	spec     *schedule.Spec
	progress time.Duration
	store    storage.Store
	format   blob.Format
}

func runAgent(ctx context.Context, a *app, p *args) error {
	// Caught from the start: their default action would kill the agent.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	pr := &agentProc{a: a, pgVar: "PGDATA", logFile: &reopenFile{}}
	pgdata := a.settings.PGData
	if v, ok := p.str("--pgdata"); ok {
		pgdata, pr.pgVar = v, "--pgdata"
	}
	if pgdata == "" {
		return &config.Error{Var: "PGDATA", Msg: "is not set: give --pgdata or set PGDATA to the data directory to back up"}
	}
	abs, err := basebackup.CheckDataDir(pgdata)
	if err != nil {
		return &config.Error{Var: pr.pgVar, Msg: oneLine(err.Error())}
	}
	pr.pgdata = abs
	pr.envdir = envdirArg(a.globalArgs)
	pr.envSet = map[string]bool{}
	if pr.envdir != "" {
		if ents, err := envdir.Read(pr.envdir); err == nil {
			for _, e := range ents {
				pr.envSet[e.Name] = true
			}
		}
	}

	rt, err := pr.prepare(ctx, a.settings, os.LookupEnv)
	if err != nil {
		return err
	}
	pushAhead, err := pushAheadEnabled()
	if err != nil {
		return err
	}
	prefetchLimit, err := prefetchBytes()
	if err != nil {
		return err
	}
	if err := pr.logFile.Reopen(rt.settings.LogFile); err != nil {
		return &config.Error{Var: "WALDEN_LOG_FILE", Msg: oneLine(err.Error())}
	}
	defer pr.logFile.Close()
	log := pr.newLogger(rt.settings)

	metricsLn, err := net.Listen("tcp", rt.settings.MetricsListen)
	if err != nil {
		return &config.Error{Var: "WALDEN_METRICS_LISTEN", Msg: fmt.Sprintf("cannot listen on %q: %v", rt.settings.MetricsListen, unwrapOp(err))}
	}
	defer metricsLn.Close()
	sockLn, err := server.Listen(rt.settings.SocketPath)
	switch {
	case errors.Is(err, server.ErrInUse):
		// Two agents on one configuration would run every backup twice.
		return &config.Error{Var: "WALDEN_SOCKET", Msg: fmt.Sprintf("cannot listen on %s: %v", rt.settings.SocketPath, unwrapOp(err))}
	case err != nil:
		// The socket only saves wal-push and wal-fetch their start-up;
		// backups and retention must not stop for it (e.g. /run/walden
		// outside systemd, where nothing creates it).
		log.Warn(walelog.WaldenName, "the WAL fast path is off",
			fmt.Sprintf("Cannot listen on %s (WALDEN_SOCKET): %v.", rt.settings.SocketPath, unwrapOp(err)),
			"wal-push and wal-fetch work without it; set WALDEN_SOCKET to a path in a directory the agent can write.",
			walelog.F("action", "agent"), walelog.F("state", "starting"))
		sockLn = nil
	}
	serving := false
	defer func() {
		if !serving && sockLn != nil { // the fast-path server removes it otherwise
			sockLn.Close()
			os.Remove(rt.settings.SocketPath)
		}
	}()
	// A store that cannot be read is a bad prefix or credentials: say so
	// now rather than at the first backup, hours later.
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	initial, err := pr.backups(rt, log).Latest(lctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return &config.Error{Var: rt.settings.PrefixVar, Msg: "cannot read the store: " + oneLine(err.Error())}
	}
	// Relative WAL paths from PostgreSQL are relative to the data
	// directory; the fast path serves them only from the same directory.
	if err := os.Chdir(pr.pgdata); err != nil {
		return &config.Error{Var: pr.pgVar, Msg: oneLine(err.Error())}
	}
	cwd, err := os.Stat(".")
	if err != nil {
		return err
	}
	pr.commit(rt.settings)

	wal := &agentWAL{root: ctx, cwd: cwd, current: pr.current}
	wal.ahead = newFetchAhead(log, prefetchLimit)
	if pushAhead {
		wal.pa = pr.newPushAhead(wal, rt.settings)
	}
	checks, err := agentChecks(a, rt.settings, pr.current, log)
	if err != nil {
		return err
	}
	pr.ag = agent.New(agent.Options{
		Checks:      checks,
		PushAhead:   wal.pa,
		FetchAhead:  wal.ahead,
		Config:      agent.Config{Log: log, Backups: pr.backups(rt, log), Schedule: rt.spec, Retain: rt.settings.Retain.String()},
		PGData:      pr.pgdata,
		Initial:     initial,
		Metrics:     metricsLn,
		Socket:      sockLn,
		Fingerprint: pr.fingerprint,
		Handler:     pr.serve(wal),
		Ready:       func() { daemon.SdNotify(false, daemon.SdNotifyReady) },
	})

	serving = true
	go func() {
		for {
			select {
			case <-ctx.Done():
				daemon.SdNotify(false, daemon.SdNotifyStopping)
				return
			case s := <-sigs:
				if s == syscall.SIGUSR1 {
					pr.ag.Trigger()
				} else {
					pr.reload(ctx)
				}
			}
		}
	}()
	err = pr.ag.Run(ctx)
	wal.wait(2 * time.Second)
	if wal.ahead != nil {
		wal.ahead.Close()
	}
	return err
}

// serve dispatches fast-path requests: checks here, WAL to wal.
func (pr *agentProc) serve(wal *agentWAL) server.Handler {
	return func(ctx context.Context, req *fastpath.Request, stdout, stderr io.Writer) (server.Reply, error) {
		if req.Command == fastpath.CommandCheck {
			return pr.check(ctx, req, stdout)
		}
		return wal.handle(ctx, req, stdout, stderr)
	}
}

// check runs `walden check`'s store and data directory checks as the
// agent, inside whatever sandbox it runs in, with its configuration.
func (pr *agentProc) check(ctx context.Context, req *fastpath.Request, stdout io.Writer) (server.Reply, error) {
	s := pr.current()
	secs, _ := strconv.Atoi(req.Options["timeout"])
	lockDir, lerr := basebackup.LockDirFor(pr.pgdata)
	if lerr != nil {
		lockDir = ""
	}
	in := check.ServiceInput{Prefix: s.Prefix, PGData: pr.pgdata, LockDir: lockDir,
		DrillDir: os.Getenv("WALDEN_DRILL_DIR"), Timeout: time.Duration(secs) * time.Second}
	ra := &app{settings: s, flags: pr.a.flags}
	st, err := ra.store(ctx)
	var rep *check.ServiceReport
	if err != nil {
		rep = &check.ServiceReport{Pid: os.Getpid(), Prefix: s.Prefix.Raw, PGData: pr.pgdata,
			Checks: []check.Result{{Name: "service store", Detail: "cannot open " + s.Prefix.Raw + ": " + oneLine(err.Error())}}}
	} else {
		in.Store = st
		rep = check.RunService(ctx, in)
	}
	if err := rep.WriteJSON(stdout); err != nil {
		return server.Reply{Status: 1}, nil
	}
	return server.Reply{}, nil
}

// prepare validates one configuration and builds what it needs, naming
// the variable at fault in any error. Nothing here touches the network.
func (pr *agentProc) prepare(ctx context.Context, s *config.Settings, env config.Env) (*runtime, error) {
	rt := &runtime{settings: s, progress: 30 * time.Second}
	var err error
	if rt.spec, err = schedule.Parse(s.BackupSchedule); err != nil {
		return nil, &config.Error{Var: "WALDEN_BACKUP_SCHEDULE", Msg: err.Error()}
	}
	if v, ok := env(progressVar); ok {
		d, perr := time.ParseDuration(v)
		if perr != nil || d <= 0 {
			return nil, &config.Error{Var: progressVar, Msg: fmt.Sprintf("must be a positive duration such as 30s, not %q", v)}
		}
		rt.progress = d
	}
	if _, err := net.ResolveTCPAddr("tcp", s.MetricsListen); err != nil {
		return nil, &config.Error{Var: "WALDEN_METRICS_LISTEN", Msg: fmt.Sprintf("%q is not a host:port address: %v", s.MetricsListen, unwrapOp(err))}
	}
	if err := s.RequirePrefix(); err != nil {
		return nil, err
	}
	ra := &app{settings: s, flags: pr.a.flags}
	if rt.store, err = ra.store(ctx); err != nil {
		return nil, &config.Error{Var: s.PrefixVar, Msg: oneLine(err.Error())}
	}
	if rt.format, err = ra.format(); err != nil {
		v := "WALE_GPG_KEY_ID"
		if s.GPG.KeyID == "" {
			v = "WALDEN_GPG_PUBLIC_KEY_PATH"
		}
		return nil, &config.Error{Var: v, Msg: oneLine(err.Error())}
	}
	return rt, nil
}

func (pr *agentProc) newLogger(s *config.Settings) *walelog.Logger {
	return walelog.New(walelog.Options{Stderr: pr.a.stderr, Terse: pr.a.flags.Terse,
		Destinations: s.LogDestinations, Facility: s.SyslogFacility, Format: s.LogFormat, File: pr.logFile})
}

func (pr *agentProc) backups(rt *runtime, log *walelog.Logger) *backups {
	return &backups{settings: rt.settings, store: rt.store, format: rt.format, log: log, pgdata: pr.pgdata, progress: rt.progress}
}

func (pr *agentProc) commit(s *config.Settings) {
	fp := fastpath.Fingerprint(s)
	pr.mu.Lock()
	pr.settings, pr.fp = s, fp
	pr.mu.Unlock()
}

func (pr *agentProc) current() *config.Settings {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.settings
}

func (pr *agentProc) fingerprint() string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.fp
}

// reload is SIGHUP: reopen the log file (logrotate), re-read the envdir
// and the environment, and switch to the new configuration only when all
// of it is valid; otherwise log why and keep the old one.
func (pr *agentProc) reload(ctx context.Context) {
	daemon.SdNotify(false, daemon.SdNotifyReloading)
	defer daemon.SdNotify(false, daemon.SdNotifyReady)
	log := pr.ag.Log()
	fields := func(state string) []walelog.Field {
		return []walelog.Field{walelog.F("action", "agent-reload"), walelog.F("state", state)}
	}
	old := pr.current()
	env, set, err := pr.readEnv()
	var s *config.Settings
	if err == nil {
		s, err = config.Load(func(n string) (string, bool) { v, ok := env[n]; return v, ok }, pr.a.flags)
	}
	var rt *runtime
	if err == nil {
		rt, err = pr.prepare(ctx, s, func(n string) (string, bool) { v, ok := env[n]; return v, ok })
	}
	if err == nil && s.LogFile != old.LogFile {
		err = pr.logFile.Check(s.LogFile)
		if err != nil {
			err = &config.Error{Var: "WALDEN_LOG_FILE", Msg: oneLine(err.Error())}
		}
	}
	if err != nil {
		if rerr := pr.logFile.Reopen(old.LogFile); rerr != nil {
			log.Error(walelog.WaldenName, "could not reopen the log file", oneLine(rerr.Error()), "", fields("failed")...)
		}
		log.Error(walelog.WaldenName, "configuration reload failed; keeping the previous configuration", oneLine(err.Error()), "", fields("failed")...)
		return
	}
	pr.applyEnv(env, set)
	if err := pr.logFile.Reopen(s.LogFile); err != nil {
		log.Error(walelog.WaldenName, "could not reopen the log file", oneLine(err.Error()), "", fields("failed")...)
	}
	log = pr.newLogger(s)
	for _, w := range s.Warnings {
		log.Warn(walelog.Main, w, "", "", fields("complete")...)
	}
	// What the agent is bound to cannot move without a restart.
	var restart []string
	if s.MetricsListen != old.MetricsListen {
		restart = append(restart, "WALDEN_METRICS_LISTEN")
		s.MetricsListen = old.MetricsListen
	}
	if s.SocketPath != old.SocketPath {
		restart = append(restart, "WALDEN_SOCKET")
		s.SocketPath = old.SocketPath
	}
	if pr.pgVar == "PGDATA" && s.PGData != old.PGData {
		restart = append(restart, "PGDATA")
		s.PGData = old.PGData
	}
	if err := pr.ag.Apply(agent.Config{Log: log, Backups: pr.backups(rt, log), Schedule: rt.spec, Retain: s.Retain.String()}); err != nil {
		log.Error(walelog.WaldenName, "configuration reload failed; keeping the previous configuration", oneLine(err.Error()), "", fields("failed")...)
		return
	}
	pr.commit(s)
	log.Info(walelog.WaldenName, "configuration reloaded",
		fmt.Sprintf("Schedule %q (UTC), retention %s.", rt.spec, s.Retain), "", fields("complete")...)
	if len(restart) > 0 {
		log.Warn(walelog.WaldenName, "some settings change only at restart", strings.Join(restart, ", ")+" keep their previous values until the agent restarts.", "", fields("complete")...)
	}
}

// readEnv computes the environment a fresh start would see: the current
// one, minus what the envdir set last time and no longer sets, plus the
// envdir as it is now. It is applied only once it proved valid.
func (pr *agentProc) readEnv() (map[string]string, map[string]bool, error) {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	set := map[string]bool{}
	if pr.envdir == "" {
		return env, set, nil
	}
	ents, err := envdir.Read(pr.envdir)
	if err != nil {
		return nil, nil, err
	}
	for k := range pr.envSet {
		delete(env, k)
	}
	for _, e := range ents {
		set[e.Name] = true
		if e.Unset {
			delete(env, e.Name)
		} else {
			env[e.Name] = e.Value
		}
	}
	return env, set, nil
}

// applyEnv makes the process environment match env for the variables the
// envdir touched, then or now, so SDKs reading it directly agree.
func (pr *agentProc) applyEnv(env map[string]string, set map[string]bool) {
	touched := map[string]bool{}
	for k := range pr.envSet {
		touched[k] = true
	}
	for k := range set {
		touched[k] = true
	}
	for k := range touched {
		if v, ok := env[k]; ok {
			os.Setenv(k, v)
		} else {
			os.Unsetenv(k)
		}
	}
	pr.envSet = set
}

// envdirArg finds --envdir in the global arguments (main made it absolute).
func envdirArg(args []string) string {
	for i, a := range args {
		if a == "--envdir" && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--envdir="); ok {
			return v
		}
	}
	return ""
}

func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// reopenFile is WALDEN_LOG_FILE: appended to, never truncated, and
// reopened on SIGHUP so logrotate can move it away.
type reopenFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// Check tells whether path could be opened, without switching to it.
func (r *reopenFile) Check(path string) error {
	if path == "" {
		return nil
	}
	f, err := openLog(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// Reopen switches to path ("" = no file); on failure the old file stays.
func (r *reopenFile) Reopen(path string) error {
	var f *os.File
	if path != "" {
		var err error
		if f, err = openLog(path); err != nil {
			return err
		}
	}
	r.mu.Lock()
	old := r.f
	r.f, r.path = f, path
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return len(p), nil
	}
	return r.f.Write(p)
}

func (r *reopenFile) Close() error { return r.Reopen("") }

// backups is the agent's view of basebackup for one configuration.
type backups struct {
	settings *config.Settings
	store    storage.Store
	format   blob.Format
	log      *walelog.Logger
	pgdata   string
	progress time.Duration
}

func (b *backups) Lock() (func(), error) {
	unlock, err := basebackup.Lock(b.pgdata)
	if errors.Is(err, basebackup.ErrLocked) {
		return nil, fmt.Errorf("%w: %v", agent.ErrBusy, err)
	}
	return unlock, err
}

func (b *backups) Backup(ctx context.Context, progress func(agent.Progress)) (agent.Backup, error) {
	s := b.settings
	res, err := basebackup.Push(ctx, basebackup.PushOptions{
		Store: b.store, Prefix: s.Prefix, Format: b.format, Log: b.log, PGData: b.pgdata,
		Concurrency:      s.UploadConcurrency,
		PartitionSize:    s.PartitionSize,
		RateLimit:        s.DiskRateLimit,
		NetworkRateLimit: s.NetworkRateLimit,
		Locked:           true,
		WALTimeout:       s.BackupWALTimeout,
		DeltaMaxSteps:    s.DeltaMaxSteps,
		Progress: func(p basebackup.Progress) {
			progress(agent.Progress{BytesRead: p.BytesRead, PartitionsDone: p.PartitionsDone})
		},
		ProgressInterval: b.progress,
	})
	if err != nil {
		return agent.Backup{}, err
	}
	return agent.Backup{Name: res.Name, Start: res.StartTime, Finish: res.FinishTime, Size: res.Size, Stored: res.Stored}, nil
}

func (b *backups) Retain(ctx context.Context) (int, error) {
	r := b.settings.Retain
	res, err := basebackup.Retain(ctx, basebackup.DeleteOptions{Store: b.store, Prefix: b.settings.Prefix, Log: b.log, PGData: b.pgdata},
		basebackup.RetainPolicy{Count: r.Count, Age: r.Age})
	return len(res.Deleted), err
}

func (b *backups) Latest(ctx context.Context) (*agent.Backup, error) {
	return latestBackup(ctx, b.store)
}

// latestBackup describes the newest complete backup from its sentinel, or
// from the sentinel object's time for backups whose sentinel says little
// (WAL-E's).
func latestBackup(ctx context.Context, st storage.Store) (*agent.Backup, error) {
	bs, err := basebackup.List(ctx, st)
	if err != nil {
		return nil, err
	}
	l, ok := basebackup.Latest(bs)
	if !ok {
		return nil, nil
	}
	out := &agent.Backup{Name: l.Name, Start: l.Modified.UTC(), Finish: l.Modified.UTC()}
	if err := l.Load(ctx, st); err != nil {
		return out, nil // listed, so it exists; the details are best effort
	}
	s := l.Sentinel
	if t, ok := s.Finished(); ok {
		out.Finish = t.UTC()
	}
	out.Start = out.Finish
	if s.StartTime != nil {
		out.Start = s.StartTime.UTC()
	}
	out.Size = s.ExpandedSizeBytes
	if s.UncompressedSize > 0 {
		out.Size = s.UncompressedSize
	}
	out.Stored = s.CompressedSize
	return out, nil
}
