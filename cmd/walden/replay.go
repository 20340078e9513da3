//go:build !walden_wal

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/progress"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// replayPoll is how often a running recovery is asked where it is.
const replayPoll = time.Second

// followReplay follows the recovery of srv until the returned stop is
// called: on a terminal as the replay bar, elsewhere as a "recovery
// progress" log line every a.progressInterval(). The target is the one
// written into the data directory's recovery settings (time or LSN), or
// else the newest segment in the archive. stop(true) after the promotion
// records the final position and ends with the summary; stop(false)
// leaves things as they were.
func (a *app) followReplay(ctx context.Context, st storage.Store, srv *basebackup.Server) (stop func(promoted bool)) {
	target, toArchiveEnd := replayTarget(srv.PGData)
	r := progress.NewReplay(a.stderr, progress.ReplayOptions{Label: "recovery", Terse: a.flags.Terse, Target: target})
	drawing := !a.flags.Terse && progress.IsTerminal(a.stderr)
	restoreLog := a.logThrough(drawing, r.LogWriter)
	logLine := func() {
		if !drawing {
			a.log.Info(walelog.WaldenName, "recovery progress", r.Line(), "")
		}
	}

	every := a.progressInterval()
	poll := min(replayPoll, every)
	fctx, cancel := context.WithCancel(ctx)
	var tl timelineTrack
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Listing a large archive takes a while: recovery runs meanwhile.
		if toArchiveEnd {
			if seg, _, err := newestSegment(fctx, st); err == nil && seg != "" {
				r.SetTarget(progress.Target{Segment: seg})
			}
		}
		pt := time.NewTicker(poll)
		defer pt.Stop()
		lt := time.NewTicker(every)
		defer lt.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-pt.C:
				if p, inRecovery, ok := replayPosition(fctx, srv); ok {
					r.Update(tl.name(p, inRecovery))
				}
			case <-lt.C:
				logLine()
			}
		}
	}()
	return func(promoted bool) {
		cancel()
		wg.Wait()
		if promoted {
			// Once recovery is over the server still answers with the
			// last replayed position.
			if p, inRecovery, ok := replayPosition(ctx, srv); ok {
				r.Update(tl.name(p, inRecovery))
			}
			logLine()
			sum := r.Finish()
			if !drawing {
				a.log.Info(walelog.WaldenName, "recovery replay finished", sum, "")
			}
		} else {
			r.Abort()
		}
		restoreLog()
	}
}

// timelineTrack names replayed segments on the timeline recovery
// replayed. The server's timeline (of its last checkpoint) turns to the
// new one around the promotion while the replay position stands still,
// so a timeline is taken only with a position in a new segment.
type timelineTrack struct {
	tli, num string // timeline taken, and the segment number last seen
}

func (tl *timelineTrack) name(p progress.Position, inRecovery bool) progress.Position {
	if len(p.Segment) != 24 {
		return p
	}
	num := p.Segment[8:]
	if tl.tli == "" || (inRecovery && num != tl.num) {
		tl.tli = p.Segment[:8]
	}
	tl.num = num
	p.Segment = tl.tli + num
	return p
}

// replayPosition asks the server over its private socket for the last
// replayed location and transaction time, and whether it still recovers.
// It fails while the server accepts no connection (before it is
// consistent, or with hot_standby off).
func replayPosition(ctx context.Context, srv *basebackup.Server) (p progress.Position, inRecovery, ok bool) {
	out, err := srv.Query(ctx, `SELECT coalesce(pg_last_wal_replay_lsn()::text, '') || '|' ||
		coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::text, '') || '|' ||
		(SELECT timeline_id FROM pg_control_checkpoint()) || '|' ||
		pg_size_bytes(current_setting('wal_segment_size')) || '|' || pg_is_in_recovery()`)
	if err != nil {
		return p, false, false
	}
	f := strings.Split(out, "|")
	if len(f) != 5 || f[0] == "" {
		return p, false, false
	}
	lsn, err := progress.ParseLSN(f[0])
	if err != nil {
		return p, false, false
	}
	inRecovery = f[4] == "true" || f[4] == "t"
	p.LSN = lsn
	if secs, err := strconv.ParseFloat(f[1], 64); err == nil {
		p.LastTx = time.Unix(0, int64(secs*1e9)).UTC()
	}
	tli, err1 := strconv.ParseUint(f[2], 10, 32)
	segSize, err2 := strconv.ParseUint(f[3], 10, 64)
	if err1 == nil && err2 == nil && segSize > 0 && segSize <= 1<<30 {
		// The record ending exactly at a boundary was in the previous segment.
		n := (uint64(lsn) - 1) / segSize
		if lsn == 0 {
			n = 0
		}
		perID := uint64(0x100000000) / segSize
		p.Segment = fmt.Sprintf("%08X%08X%08X", tli, n/perID, n%perID)
	}
	return p, inRecovery, true
}

// replayTarget is where this recovery stops: recovery_target_time or
// recovery_target_lsn from postgresql.auto.conf; toArchiveEnd when there
// is no target (the newest archived segment is then the target). Other
// targets (name, xid, immediate) leave it unknown.
func replayTarget(pgdata string) (t progress.Target, toArchiveEnd bool) {
	settings := readAutoConf(filepath.Join(pgdata, "postgresql.auto.conf"))
	if v := settings["recovery_target_time"]; v != "" {
		if tm, err := basebackup.ParseTargetTime(v); err == nil {
			return progress.Target{Time: tm}, false
		}
	}
	if v := settings["recovery_target_lsn"]; v != "" {
		if l, err := progress.ParseLSN(v); err == nil {
			return progress.Target{LSN: l}, false
		}
	}
	for _, k := range []string{"recovery_target_name", "recovery_target_xid", "recovery_target", "recovery_target_time", "recovery_target_lsn"} {
		if settings[k] != "" {
			return progress.Target{}, false
		}
	}
	return progress.Target{}, true
}

// readAutoConf reads name = 'value' lines; later ones win, as in PostgreSQL.
func readAutoConf(path string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = strings.ReplaceAll(v[1:len(v)-1], "''", "'")
		}
		out[strings.TrimSpace(k)] = v
	}
	return out
}

// newestSegment is the highest WAL segment name in the archive (the newest
// timeline's last) and when it was stored; "" when there is none.
func newestSegment(ctx context.Context, st storage.Store) (string, time.Time, error) {
	objs, err := st.List(ctx, basebackup.WALDir)
	if err != nil {
		return "", time.Time{}, err
	}
	var name string
	var when time.Time
	for _, o := range objs {
		base := strings.TrimPrefix(o.Key, basebackup.WALDir)
		if len(base) < 24 || strings.Contains(base, "/") || !isHexUpper(base[:24]) {
			continue
		}
		if rest := base[24:]; rest != "" && (rest[0] != '.' || strings.Contains(rest, ".partial") || strings.Contains(rest, ".backup")) {
			continue
		}
		if base[:24] > name {
			name, when = base[:24], o.Modified
		}
	}
	return name, when, nil
}

func isHexUpper(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
