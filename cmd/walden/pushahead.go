//go:build !walden_wal

package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/walden-pg/walden/agent"
	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/wal"
	"github.com/walden-pg/walden/walelog"
)

// pushAheadVar turns off push-ahead archiving in the agent; read at start.
const pushAheadVar = "WALDEN_PUSH_AHEAD"

// pushAheadEnabled is on unless WALDEN_PUSH_AHEAD says off: the agent always
// knows its cluster's data directory, and with push-ahead a wal-push it
// serves usually finds its segment already stored.
func pushAheadEnabled() (bool, error) {
	v, set := os.LookupEnv(pushAheadVar)
	if !set {
		return true, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "off", "0", "false", "no":
		return false, nil
	case "on", "1", "true", "yes":
		return true, nil
	}
	return false, &config.Error{Var: pushAheadVar, Msg: fmt.Sprintf("must be on or off, not %q", v)}
}

// newPushAhead archives the agent's cluster's .ready segments with the same
// wal.Archive code wal-push runs, logging to the agent's log.
func (pr *agentProc) newPushAhead(w *agentWAL, s *config.Settings) *agent.PushAhead {
	return agent.NewPushAhead(agent.PushAheadOptions{
		PGData:  pr.pgdata,
		Workers: s.PushAheadConcurrency,
		Upload: func(ctx context.Context, path string) error {
			cur := pr.current()
			c := *cur
			c.SocketPath = ""
			a := &app{prog: pr.a.prog, walE: pr.a.walE, settings: &c, flags: pr.a.flags, stdout: io.Discard, stderr: io.Discard}
			a.log = pr.ag.Log()
			ar, err := w.archive(cur, a)
			if err != nil {
				return err
			}
			// One segment, no pool: status files are PostgreSQL's to rename.
			ar.Workers = 1
			return ar.Push(ctx, path, 1)
		},
		Failed: func(name string, err error) {
			pr.ag.Log().Warn(walelog.Upload, "could not archive a segment ahead of archive_command",
				fmt.Sprintf("%s: %s", name, oneLine(err.Error())),
				"Its .ready status file stays; the agent retries it and archive_command still archives it.",
				walelog.F("action", "push-ahead"), walelog.F("seg", name), walelog.F("state", "failed"))
		},
	})
}

// pushAhead answers a wal-push of one of the agent's cluster's segments
// from push-ahead: at once when that very file is already stored, after
// the upload when it is in flight, else by pushing it here without a pool
// (the agent's workers take care of the other .ready segments).
// handled is false for any other file, which is pushed as before.
func (w *agentWAL) pushAhead(ctx context.Context, a *app, p *args, push func(*args) error) (handled bool, err error) {
	path := p.pos[0]
	if wal.Classify(filepath.Base(path)) != wal.KindSegment {
		return false, nil
	}
	dir, err1 := os.Stat(filepath.Dir(path))
	ours, err2 := os.Stat(w.pa.WALDir())
	fi, err3 := os.Stat(path)
	if err1 != nil || err2 != nil || err3 != nil || !os.SameFile(dir, ours) {
		return false, nil
	}
	durable, release, err := w.pa.Claim(ctx, path, agent.IdentityOf(fi))
	if err != nil {
		return true, err
	}
	if durable {
		return true, nil
	}
	q := *p
	q.vals = maps.Clone(p.vals)
	q.vals["--pool-size"] = "1"
	err = push(&q)
	release(err)
	return true, err
}
