//go:build !walden_wal

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/walden-pg/walden/agent"
	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/storage"
)

// statusReport is what walden status prints: the agent's (or the local)
// report, with the same fields, plus the answer to "are we safe?".
type statusReport struct {
	*agent.Report
	Window       *pitrWindow    `json:"pitr_window"`
	WindowError  string         `json:"pitr_window_error,omitempty"`
	Archiver     *archiverStats `json:"archiver,omitempty"`
	ArchiverErr  string         `json:"archiver_error,omitempty"`
	ReadyFiles   *int           `json:"archive_ready_files,omitempty"`
	AgentPushed  *float64       `json:"agent_wal_pushed_total,omitempty"`
	AgentFailed  *float64       `json:"agent_wal_push_failures_total,omitempty"`
	Safe         bool           `json:"safe"`
	SafeProblems []string       `json:"safe_problems"`
}

// pitrWindow is the range a restore can reach: from the start of the
// oldest kept backup to the newest archived segment.
type pitrWindow struct {
	OldestBackup     string     `json:"oldest_backup"`
	OldestPoint      time.Time  `json:"oldest_restorable_time"`
	NewestSegment    string     `json:"newest_segment,omitempty"`
	NewestSegmentAt  *time.Time `json:"newest_segment_time,omitempty"`
	NewestSegmentAge *float64   `json:"newest_segment_age_seconds,omitempty"`
	Backups          int        `json:"backups"`
}

// archiverStats is PostgreSQL's pg_stat_archiver.
type archiverStats struct {
	ArchivedCount int64      `json:"archived_count"`
	LastArchived  string     `json:"last_archived_wal,omitempty"`
	LastArchTime  *time.Time `json:"last_archived_time,omitempty"`
	FailedCount   int64      `json:"failed_count"`
	LastFailed    string     `json:"last_failed_wal,omitempty"`
	LastFailTime  *time.Time `json:"last_failed_time,omitempty"`
	// Failing: the last attempt failed (a failure newer than the last
	// success), so segments are piling up unarchived.
	Failing bool `json:"failing"`
}

// safety completes rep with the restore window, the archiver's state and
// a verdict. Each part is best effort: what cannot be read is reported,
// not fatal.
func (a *app) safety(ctx context.Context, rep *agent.Report, pgdata string) *statusReport {
	s := &statusReport{Report: rep, SafeProblems: []string{}}
	if st, err := a.store(ctx); err != nil {
		s.WindowError = err.Error()
	} else if w, err := restoreWindow(ctx, st, rep.Now); err != nil {
		s.WindowError = err.Error()
	} else {
		s.Window = w
	}
	if pgdata != "" {
		if n, err := countReady(pgdata); err == nil {
			s.ReadyFiles = &n
		}
		if as, err := archiverState(ctx, pgdata); err != nil {
			s.ArchiverErr = err.Error()
		} else {
			s.Archiver = as
		}
	} else {
		s.ArchiverErr = "PGDATA is not set (use --pgdata)"
	}
	if rep.Agent.Running {
		if m, err := agentMetrics(ctx, a.settings.MetricsListen); err == nil {
			if v, ok := m["walden_wal_pushed_total"]; ok {
				s.AgentPushed = &v
			}
			if v, ok := m["walden_wal_push_failures_total"]; ok {
				s.AgentFailed = &v
			}
		}
	}

	if !rep.Healthy {
		s.SafeProblems = append(s.SafeProblems, rep.Health)
	}
	switch {
	case s.Window == nil:
		s.SafeProblems = append(s.SafeProblems, "the restore window is unknown: "+s.WindowError)
	case s.Window.NewestSegment == "":
		s.SafeProblems = append(s.SafeProblems, "no WAL segment is archived")
	}
	if s.Archiver != nil && s.Archiver.Failing {
		s.SafeProblems = append(s.SafeProblems, fmt.Sprintf("archiving is failing: %s could not be archived (%d failures)", s.Archiver.LastFailed, s.Archiver.FailedCount))
	}
	s.Safe = len(s.SafeProblems) == 0
	return s
}

// restoreWindow reads the kept backups and the archive's newest segment.
func restoreWindow(ctx context.Context, st storage.Store, now time.Time) (*pitrWindow, error) {
	bs, err := basebackup.List(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("listing backups: %w", err)
	}
	w := &pitrWindow{Backups: len(bs)}
	if len(bs) > 0 {
		// Names carry the start segment: the lowest is the oldest backup.
		sort.Slice(bs, func(i, j int) bool { return bs[i].Name < bs[j].Name })
		b := bs[0]
		w.OldestBackup, w.OldestPoint = b.Name, b.Modified.UTC()
		if err := b.Load(ctx, st); err == nil && b.Sentinel.StartTime != nil {
			w.OldestPoint = b.Sentinel.StartTime.UTC()
		}
	}
	seg, when, err := newestSegment(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("listing WAL: %w", err)
	}
	if seg != "" {
		w.NewestSegment = seg
		when = when.UTC()
		w.NewestSegmentAt = &when
		age := now.Sub(when).Seconds()
		w.NewestSegmentAge = &age
	}
	return w, nil
}

// countReady counts the segments PostgreSQL still has to archive.
func countReady(pgdata string) (int, error) {
	ents, err := os.ReadDir(filepath.Join(pgdata, "pg_wal", "archive_status"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".ready") {
			n++
		}
	}
	return n, nil
}

// archiverState reads pg_stat_archiver from the server running on pgdata,
// over its unix socket.
func archiverState(ctx context.Context, pgdata string) (*archiverStats, error) {
	srv, err := basebackup.NewServer(pgdata)
	if err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := srv.Query(qctx, `SELECT concat_ws('|', archived_count, coalesce(last_archived_wal, ''),
		coalesce(extract(epoch FROM last_archived_time)::text, ''), failed_count,
		coalesce(last_failed_wal, ''), coalesce(extract(epoch FROM last_failed_time)::text, ''))
		FROM pg_stat_archiver`)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL is not reachable: %v", err)
	}
	f := strings.Split(out, "|")
	if len(f) != 6 {
		return nil, fmt.Errorf("unexpected pg_stat_archiver answer %q", out)
	}
	as := &archiverStats{LastArchived: f[1], LastFailed: f[4]}
	as.ArchivedCount, _ = strconv.ParseInt(f[0], 10, 64)
	as.FailedCount, _ = strconv.ParseInt(f[3], 10, 64)
	as.LastArchTime, as.LastFailTime = epoch(f[2]), epoch(f[5])
	as.Failing = as.LastFailTime != nil && (as.LastArchTime == nil || as.LastFailTime.After(*as.LastArchTime))
	return as, nil
}

func epoch(s string) *time.Time {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil
	}
	t := time.Unix(0, int64(v*1e9)).UTC()
	return &t
}

// agentMetrics reads the running agent's counters from its metrics listener.
func agentMetrics(ctx context.Context, listen string) (map[string]float64, error) {
	resp, cancel, err := agentGet(ctx, listen, "/metrics")
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			m[k] = f
		}
	}
	return m, nil
}

// writeText prints the additions after the report's own lines.
func (s *statusReport) writeText(w io.Writer) {
	line := func(k, v string) { fmt.Fprintf(w, "%-16s%s\n", k+":", v) }
	const tf = "2006-01-02 15:04:05 UTC"
	switch {
	case s.Window == nil:
		line("restore window", "unknown: "+s.WindowError)
	case s.Window.Backups == 0:
		line("restore window", "none (no base backup)")
	default:
		v := fmt.Sprintf("from %s (start of %s, %d backups kept) to ", s.Window.OldestPoint.Format(tf), s.Window.OldestBackup, s.Window.Backups)
		if s.Window.NewestSegment == "" {
			v += "? (no WAL archived)"
		} else {
			v += fmt.Sprintf("%s (archived %s, %s ago)", s.Window.NewestSegment, s.Window.NewestSegmentAt.Format(tf),
				agent.Human(time.Duration(*s.Window.NewestSegmentAge*float64(time.Second))))
		}
		line("restore window", v)
	}
	switch as := s.Archiver; {
	case as != nil:
		v := fmt.Sprintf("%d archived", as.ArchivedCount)
		if as.LastArchived != "" && as.LastArchTime != nil {
			v += fmt.Sprintf(" (last %s at %s)", as.LastArchived, as.LastArchTime.Format(tf))
		}
		v += fmt.Sprintf(", %d failed", as.FailedCount)
		if as.LastFailed != "" && as.LastFailTime != nil {
			v += fmt.Sprintf(" (last %s at %s)", as.LastFailed, as.LastFailTime.Format(tf))
		}
		if as.Failing {
			v = "FAILING: " + v
		}
		line("archiver", v)
	case s.ArchiverErr != "":
		line("archiver", "unknown: "+s.ArchiverErr)
	}
	if s.ReadyFiles != nil {
		line("not archived", fmt.Sprintf("%d segments (.ready)", *s.ReadyFiles))
	}
	if s.AgentPushed != nil || s.AgentFailed != nil {
		var pushed, failed float64
		if s.AgentPushed != nil {
			pushed = *s.AgentPushed
		}
		if s.AgentFailed != nil {
			failed = *s.AgentFailed
		}
		line("agent wal-push", fmt.Sprintf("%.0f pushed, %.0f failed", pushed, failed))
	}
	if s.Safe {
		line("safe", "yes")
	} else {
		line("safe", "NO: "+strings.Join(s.SafeProblems, "; "))
	}
}
