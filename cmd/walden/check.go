//go:build !walden_wal

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/walden-pg/walden/agent/fastpath"
	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/check"
	"github.com/walden-pg/walden/storage"
)

var checkCmd = &command{
	name: "check",
	desc: "prove the configuration works: store, GPG key and PostgreSQL's archiving settings; list the backups and WAL found",
	opts: []opt{
		{long: "--json", help: "print one JSON object instead of lines"},
		{long: "--no-postgres", help: "skip the PostgreSQL checks (e.g. before the server exists)"},
		{long: "--timeout", metavar: "SECONDS", isInt: true, help: "limit for each part (store, GPG, PostgreSQL, listing); default 60"},
		{long: "--require-agent", help: "fail unless the running agent answers on WALDEN_SOCKET and passes the checks from inside its sandbox"},
	},
	maxPos: 0,
	run: func(ctx context.Context, a *app, p *args) error {
		timeout := time.Duration(p.int("--timeout", 0)) * time.Second
		in := check.Input{
			Settings:  a.settings,
			OpenStore: func(ctx context.Context) (storage.Store, error) { return a.store(ctx) },
			Format:    func() (blob.Format, error) { return a.format() },
			Postgres:  check.ReadPostgres,
			Timeout:   timeout,
			Secrets:   []string{a.settings.S3.SecretAccessKey, a.settings.S3.SessionToken, os.Getenv("PGPASSWORD")},
			// The agent runs under the service's sandbox and user, where
			// paths this process can write may be read-only: ask it.
			Service:        func(ctx context.Context) (*check.ServiceReport, error) { return agentCheck(ctx, a, timeout) },
			RequireService: p.flags["--require-agent"],
		}
		if p.flags["--no-postgres"] {
			in.Postgres = nil
		}
		rep := check.Run(ctx, in)
		var err error
		if p.flags["--json"] {
			err = rep.WriteJSON(a.stdout)
		} else {
			err = rep.WriteText(a.stdout)
		}
		rep.WriteProblems(a.stderr, a.prog+" check: ")
		if err != nil {
			return err
		}
		if !rep.OK {
			// The problems are already on stderr, one line each.
			return exitStatus(1)
		}
		return nil
	},
}

// agentCheck sends a check request to the agent on WALDEN_SOCKET.
func agentCheck(ctx context.Context, a *app, timeout time.Duration) (*check.ServiceReport, error) {
	path := a.settings.SocketPath
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w on %s (WALDEN_SOCKET): %v", check.ErrNoAgent, path, unwrapPath(err))
	}
	if timeout <= 0 {
		timeout = check.DefaultTimeout
	}
	req := &fastpath.Request{
		Fingerprint: fastpath.Fingerprint(a.settings),
		Command:     fastpath.CommandCheck,
		Options:     map[string]string{"timeout": strconv.Itoa(int(timeout / time.Second))},
		Pid:         os.Getpid(),
		Prog:        a.prog,
	}
	var out, errb bytes.Buffer
	status, err := fastpath.Do(ctx, path, req, &out, &errb)
	switch {
	case errors.Is(err, fastpath.ErrUnavailable):
		return nil, fmt.Errorf("%w on %s (WALDEN_SOCKET)", check.ErrNoAgent, path)
	case err != nil:
		return nil, fmt.Errorf("the agent on %s: %v", path, err)
	case status != 0:
		return nil, fmt.Errorf("the agent on %s answered with status %d: %s", path, status, oneLine(strings.TrimSpace(errb.String())))
	}
	var rep check.ServiceReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("the agent on %s sent an unreadable report: %v", path, err)
	}
	return &rep, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
