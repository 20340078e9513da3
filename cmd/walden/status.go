//go:build !walden_wal

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/walden-pg/walden/agent"
	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/schedule"
)

var statusCmd = &command{
	name: "status", desc: "are we safe? the latest base backup, the restore window, the archiver, the schedule, retention and whether the agent runs",
	opts: []opt{
		{long: "--json", help: "print the summary as JSON, for scripts"},
		{long: "--pgdata", metavar: "PGDATA", help: "data directory whose archive lag, pg_stat_archiver and .ready files to report (default: the agent's, or the PGDATA variable)"},
	},
	maxPos: 0,
	run:    runStatus,
}

func runStatus(ctx context.Context, a *app, p *args) error {
	rep, err := askAgent(ctx, a.settings.MetricsListen)
	if err != nil {
		if rep, err = localReport(ctx, a, p); err != nil {
			return err
		}
	}
	pgdata := rep.PGData
	if pgdata == "" {
		pgdata = a.settings.PGData
	}
	if v, ok := p.str("--pgdata"); ok {
		pgdata = v
	}
	safe := a.safety(ctx, rep, pgdata)
	if p.flags["--json"] {
		e := json.NewEncoder(a.stdout)
		e.SetIndent("", "  ")
		return e.Encode(safe)
	}
	rep.WriteText(a.stdout)
	safe.writeText(a.stdout)
	return nil
}

// askAgent fetches the running agent's own report from its metrics
// listener; an unspecified listen host is reached on loopback.
func askAgent(ctx context.Context, listen string) (*agent.Report, error) {
	resp, cancel, err := agentGet(ctx, listen, "/status")
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent status: %s", resp.Status)
	}
	var r agent.Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if !r.Agent.Running {
		return nil, fmt.Errorf("not an agent's report")
	}
	return &r, nil
}

// localReport builds the report without an agent: the store for the
// latest backup, the schedule from the configuration, PGDATA for the lag.
func localReport(ctx context.Context, a *app, p *args) (*agent.Report, error) {
	s := a.settings
	spec, err := schedule.Parse(s.BackupSchedule)
	if err != nil {
		return nil, &config.Error{Var: "WALDEN_BACKUP_SCHEDULE", Msg: err.Error()}
	}
	st, err := a.store(ctx)
	if err != nil {
		return nil, err
	}
	latest, err := latestBackup(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("reading the store: %w", err)
	}
	now := time.Now().UTC()
	next := spec.Next(now)
	r := &agent.Report{Now: now, Latest: latest, Schedule: spec.String(), NextRun: &next, Retention: s.Retain.String()}
	pgdata := s.PGData
	if v, ok := p.str("--pgdata"); ok {
		pgdata = v
	}
	r.PGData = pgdata
	if pgdata == "" {
		r.ArchiveLagError = "PGDATA is not set (use --pgdata)"
	} else if lag, err := agent.ArchiveLag(pgdata, now); err != nil {
		r.ArchiveLagError = err.Error()
	} else {
		v := lag.Seconds()
		r.ArchiveLag = &v
	}
	r.Fill(spec)
	return r, nil
}

// agentGet asks the running agent's metrics listener for path, within 3 s;
// an unspecified listen host is reached on loopback. The caller closes the
// body, then cancels.
func agentGet(ctx context.Context, listen, path string) (*http.Response, context.CancelFunc, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, nil, err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+net.JoinHostPort(host, port)+path, nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return resp, cancel, nil
}
