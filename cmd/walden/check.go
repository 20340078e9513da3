package main

import (
	"context"
	"os"
	"time"

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
	},
	maxPos: 0,
	run: func(ctx context.Context, a *app, p *args) error {
		in := check.Input{
			Settings:  a.settings,
			OpenStore: func(ctx context.Context) (storage.Store, error) { return a.store(ctx) },
			Format:    func() (blob.Format, error) { return a.format() },
			Postgres:  check.ReadPostgres,
			Timeout:   time.Duration(p.int("--timeout", 0)) * time.Second,
			Secrets:   []string{a.settings.S3.SecretAccessKey, a.settings.S3.SessionToken, os.Getenv("PGPASSWORD")},
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
