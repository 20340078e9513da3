package main

import (
	"context"
	"fmt"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/verify"
	"github.com/walden-pg/walden/walelog"
)

var verifyOpts = []opt{
	{long: "--backup", metavar: "NAME", help: "NAME, LATEST or all (default: the backups WALDEN_RETAIN keeps)"},
	{long: "--quick", help: "check presence and sizes only; download nothing"},
	{long: "--json", help: "print the whole report as one JSON object"},
}

var verifyCmd = &command{
	name: "verify", desc: "prove the archive restores: read every kept backup and the WAL it needs, writing nothing",
	opts: verifyOpts, maxPos: 0,
	run: runVerify,
}

func runVerify(ctx context.Context, a *app, p *args) error {
	if err := a.settings.RequirePrefix(); err != nil {
		return err
	}
	st, err := a.store(ctx)
	if err != nil {
		return err
	}
	cr, err := a.crypter()
	if err != nil {
		return err
	}
	name, _ := p.str("--backup")
	o := verify.Options{
		Store: st, Prefix: a.settings.Prefix, Crypt: cr, Backup: name, Quick: p.flags["--quick"],
		Retain:      basebackup.RetainPolicy{Count: a.settings.Retain.Count, Age: a.settings.Retain.Age},
		Concurrency: a.settings.DownloadConcurrency,
	}
	a.log.Info(walelog.WaldenName, "verify start", fmt.Sprintf("Verifying %s.", a.settings.Prefix.URL("")), "")
	rep, err := verify.Run(ctx, o)
	if err != nil {
		return err
	}
	if p.flags["--json"] {
		err = rep.WriteJSON(a.stdout)
	} else {
		err = rep.WriteText(a.stdout)
	}
	rep.WriteProblems(a.stderr, a.prog+" verify: ")
	if err != nil {
		return err
	}
	a.log.Info(walelog.WaldenName, "verify finish", fmt.Sprintf("%d backup(s), %d WAL segment(s), %d problem(s) in %.1fs.", len(rep.Backups), rep.SegmentsChecked, len(rep.Problems), rep.Seconds), "")
	if !rep.OK {
		return exitStatus(1)
	}
	return nil
}
