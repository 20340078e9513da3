//go:build !walden_wal

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/walden-pg/walden/agent"
	"github.com/walden-pg/walden/agent/fastpath"
	"github.com/walden-pg/walden/agent/fastpath/server"
	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/wal"
	"github.com/walden-pg/walden/walelog"
)

// agentWAL serves fast-path requests inside the agent with the same
// wal.Archive code a standalone process runs, under an app whose logger
// carries the client's pid and writes to the client's stderr.
type agentWAL struct {
	root    context.Context // the agent's lifetime: prefetches outlive requests
	cwd     os.FileInfo     // the agent's working directory (PGDATA)
	current func() *config.Settings

	// The store client and codec/key of the configuration in force, built
	// once: reusing them (and the store's connections) is most of what
	// the fast path saves on remote stores.
	mu        sync.Mutex
	cachedFor *config.Settings
	store     storage.Store
	format    blob.Format

	prefetches sync.WaitGroup

	pa *agent.PushAhead // nil: push-ahead is off

	ahead *agent.Prefetcher // fetch-ahead for clients that write %p themselves; nil: none
}

func (w *agentWAL) handle(ctx context.Context, req *fastpath.Request, stdout, stderr io.Writer) (server.Reply, error) {
	var pathArg int
	switch {
	case req.Command == "wal-push" && len(req.Positionals) == 1:
		pathArg = 0
	case req.Command == "wal-fetch" && len(req.Positionals) == 2:
		pathArg = 1
	default:
		return server.Reply{}, fmt.Errorf("cannot serve %q with %d arguments", req.Command, len(req.Positionals))
	}
	if p := req.Positionals[pathArg]; !filepath.IsAbs(p) {
		// Rewriting the path would change the log lines; serve relative
		// paths only from the directory they are relative to.
		fi, err := os.Stat(req.Cwd)
		if err != nil || !os.SameFile(fi, w.cwd) {
			return server.Reply{}, fmt.Errorf("relative path %q from %s, not the agent's directory", p, req.Cwd)
		}
	}
	if req.Log == nil {
		return server.Reply{}, fmt.Errorf("request without the client's logging")
	}
	cur := w.current()
	s := *cur
	s.SocketPath = "" // nothing here may hand the work back to us
	s.Terse = req.Terse
	req.Log.Apply(&s) // log where the client would have
	a := &app{prog: req.Prog, walE: req.Prog == "wal-e", stdout: stdout, stderr: stderr,
		globalArgs: req.GlobalArgs, flags: config.Flags{Terse: req.Terse}, settings: &s}
	// As newLogger, plus the client's pid.
	a.log = walelog.New(walelog.Options{Stderr: stderr, Terse: req.Terse,
		Destinations: s.LogDestinations, Facility: s.SyslogFacility, Format: s.LogFormat, Pid: req.Pid})
	defer a.log.Close()
	p := &args{flags: req.Flags, vals: req.Options, pos: req.Positionals}
	if p.flags == nil {
		p.flags = map[string]bool{}
	}
	if p.vals == nil {
		p.vals = map[string]string{}
	}
	var err error
	notFound := false
	if req.Command == "wal-push" {
		err = w.push(ctx, cur, a, p)
	} else {
		notFound, err = w.fetch(ctx, cur, a, p)
	}
	if err == nil {
		return server.Reply{}, nil
	}
	return server.Reply{Status: a.fail(err), NotFound: notFound}, nil
}

// archive is app.archive with the cached store and format of cur.
func (w *agentWAL) archive(cur *config.Settings, a *app) (*wal.Archive, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cachedFor != cur {
		ca := &app{settings: cur, flags: a.flags}
		st, err := ca.store(w.root)
		if err != nil {
			return nil, err
		}
		f, err := ca.format()
		if err != nil {
			return nil, err
		}
		w.cachedFor, w.store, w.format = cur, st, f
	}
	ar := &wal.Archive{Store: w.store, Prefix: a.settings.Prefix, Format: w.format, Crypt: w.format.Crypt, Log: a.log, Workers: a.settings.UploadConcurrency}
	return ar, a.walSafety(ar)
}

// push is walPushCmd's run on the cached archive. Its output must stay
// exactly walpush.go's (TestFastPathOutputMatchesStandalone pins it).
func (w *agentWAL) push(ctx context.Context, cur *config.Settings, a *app, p *args) error {
	ar, err := w.archive(cur, a)
	if err != nil {
		return err
	}
	if w.pa != nil {
		if handled, err := w.pushAhead(ctx, a, p, func(q *args) error { return pushWith(ctx, a, ar, q) }); handled {
			return err
		}
	}
	return pushWith(ctx, a, ar, p)
}

// fetch is walFetchCmd's run on the cached archive, with prefetches as
// goroutines of the agent instead of detached processes, which the agent
// would have to reap. The on-disk prefetch protocol is wal.Archive's.
func (w *agentWAL) fetch(ctx context.Context, cur *config.Settings, a *app, p *args) (notFound bool, err error) {
	if err := wal.ValidName(p.pos[0]); err != nil {
		return false, a.fetchUsageError(err)
	}
	if data := server.Data(ctx); data != nil {
		return w.fetchReceive(ctx, cur, a, p, data)
	}
	ar, err := w.archive(cur, a)
	if err != nil {
		a.fail(err)
		return false, exitStatus(exitFetchFailed)
	}
	err = fetchWith(ctx, a, ar, p, w.prefetcher(cur, a))
	return errors.Is(err, exitStatus(1)), err
}

func (w *agentWAL) prefetcher(cur *config.Settings, a *app) wal.Spawner {
	return func(base, seg string) error {
		w.prefetches.Add(1)
		go func() {
			defer w.prefetches.Done()
			// A helper's output went to /dev/null; syslog still hears it.
			pa := &app{settings: a.settings, flags: a.flags, stdout: io.Discard, stderr: io.Discard}
			pa.log = pa.newLogger(a.settings)
			defer pa.log.Close()
			ar, err := w.archive(cur, pa)
			if err != nil {
				os.RemoveAll(filepath.Join(base, ".wal-e", "prefetch", "running", seg))
				return
			}
			ar.Prefetch(w.root, base, seg)
		}()
		return nil
	}
}

// wait lets prefetches cancelled by the agent's stop clean up.
func (w *agentWAL) wait(d time.Duration) {
	done := make(chan struct{})
	go func() { w.prefetches.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
