//go:build !walden_wal

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/walden-pg/walden/agent"
	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/gpg"
	"github.com/walden-pg/walden/schedule"
	"github.com/walden-pg/walden/storage/open"
	"github.com/walden-pg/walden/verify"
	"github.com/walden-pg/walden/walelog"
)

var verifyOpts = []opt{
	{long: "--backup", metavar: "NAME", help: "NAME, LATEST or all (default: the backups WALDEN_RETAIN keeps)"},
	{long: "--quick", help: "check presence and sizes only; download nothing"},
	{long: "--json", help: "print the whole report as one JSON object"},
	{long: "--restore", help: "run a restore drill: fetch the backup, replay the archive with a private PostgreSQL, query it"},
	{long: "--scratch", metavar: "DIR", help: "drill: new or empty directory to work in (default: under WALDEN_DRILL_DIR)"},
	{long: "--target-time", metavar: "TIME", help: "drill: recover up to this time instead of the end of the archive"},
	{long: "--target-lsn", metavar: "LSN", help: "drill: recover up to this WAL position"},
	{long: "--query", metavar: "SQL", help: "drill: query to run once recovered (default: count pg_database and pg_class rows)"},
	{long: "--keep", help: "drill: keep the scratch directory"},
	{long: "--pg-bin", metavar: "DIR", help: "drill: PostgreSQL programs (default /usr/lib/postgresql/MAJOR/bin)"},
}

var verifyCmd = &command{
	name: "verify", desc: "prove the archive restores: read every kept backup and the WAL it needs, writing nothing",
	opts: verifyOpts, maxPos: 0,
	run: runVerify,
}

func runVerify(ctx context.Context, a *app, p *args) error {
	prog := a.prog + " verify"
	usage := usageLine(prog, verifyOpts, nil)
	fail := func(msg string) error { return exitStatus(a.usageFail(usage, prog, msg)) }
	if !p.flags["--restore"] {
		for _, o := range []string{"--scratch", "--target-time", "--target-lsn", "--query", "--pg-bin"} {
			if _, ok := p.vals[o]; ok {
				return fail("argument " + o + ": only with --restore")
			}
		}
		if p.flags["--keep"] {
			return fail("argument --keep: only with --restore")
		}
	} else {
		if p.flags["--quick"] {
			return fail("argument --quick: not allowed with --restore")
		}
		_, hasT := p.vals["--target-time"]
		_, hasL := p.vals["--target-lsn"]
		if hasT && hasL {
			return fail("at most one of --target-time and --target-lsn")
		}
		if v, ok := p.vals["--target-time"]; ok {
			if _, err := basebackup.ParseTargetTime(v); err != nil {
				return fail("argument --target-time: " + err.Error())
			}
		}
		if v, ok := p.vals["--target-lsn"]; ok {
			if _, err := basebackup.ParseLSN(v); err != nil {
				return fail("argument --target-lsn: " + err.Error())
			}
		}
	}
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
	if p.flags["--restore"] {
		return a.runDrill(ctx, p, o)
	}
	a.log.Info(walelog.WaldenName, "verify start", fmt.Sprintf("Verifying %s.", a.settings.Prefix.URL("")), "")
	bar := a.startTransfer("verify", 0)
	o.Progress = bar
	rep, err := verify.Run(ctx, o)
	bar.end(err)
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

func (a *app) runDrill(ctx context.Context, p *args, vo verify.Options) error {
	o := verify.DrillOptions{Verify: vo, Log: a.log, DrillDir: a.settings.Verify.DrillDir, Keep: p.flags["--keep"], RestoreCommand: a.drillRestoreCommand}
	o.Scratch, _ = p.str("--scratch")
	o.Query, _ = p.str("--query")
	o.PGBin, _ = p.str("--pg-bin")
	o.Target.Time, _ = p.str("--target-time")
	o.Target.LSN, _ = p.str("--target-lsn")
	if o.Target.Time != "" {
		tt, _ := basebackup.ParseTargetTime(o.Target.Time)
		o.Target.Time = basebackup.NormalizedTime(tt)
	}
	a.log.Info(walelog.WaldenName, "restore drill start", fmt.Sprintf("Drilling %s of %s.", orLatest(vo.Backup), a.settings.Prefix.URL("")), "")
	res, err := verify.Drill(ctx, o)
	var de *verify.DrillError
	if err != nil && !errors.As(err, &de) {
		return err
	}
	if p.flags["--json"] {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if werr := enc.Encode(res); werr != nil {
			return werr
		}
	} else {
		writeDrill(a.stdout, res)
	}
	if de != nil {
		fmt.Fprintf(a.stderr, "%s verify: %s\n", a.prog, de.Msg)
		a.log.Error(walelog.WaldenName, "restore drill failed", oneLine(de.Msg), "Server log tail:\n"+res.ServerLog)
		return exitStatus(1)
	}
	a.log.Info(walelog.WaldenName, "restore drill finish", fmt.Sprintf("%s recovered to %s in %.1fs (fetch %.1fs, replay %.1fs).", res.Backup, res.ReplayEnd, res.FetchSeconds+res.ReplaySeconds, res.FetchSeconds, res.ReplaySeconds), "")
	return nil
}

func orLatest(s string) string {
	if s == "" {
		return "LATEST"
	}
	return s
}

func writeDrill(w io.Writer, r *verify.DrillResult) {
	verdict := "PASSED"
	if !r.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "drill of %s: %s\n", r.Backup, verdict)
	fmt.Fprintf(w, "  fetch:  %.1fs, %d bytes\n", r.FetchSeconds, r.FetchedBytes)
	fmt.Fprintf(w, "  replay: %.1fs, %s..%s, %d bytes (%.1f MiB/s)\n", r.ReplaySeconds, r.ReplayStart, r.ReplayEnd, r.ReplayBytes, r.ReplayMiBps)
	if r.Target != "" {
		fmt.Fprintf(w, "  target: %s\n", r.Target)
	} else {
		fmt.Fprintf(w, "  reached: %s (newest archived %s)\n", r.EndSegment, r.NewestArchived)
	}
	if r.QueryOutput != "" {
		fmt.Fprintf(w, "  query:  %s\n", strings.ReplaceAll(r.QueryOutput, "\n", "; "))
	}
	if r.Problem != "" {
		fmt.Fprintf(w, "  problem: %s\n", r.Problem)
	}
	if r.Kept {
		fmt.Fprintf(w, "  kept: %s\n", r.Scratch)
	}
}

// agentChecks builds the agent's scheduled verify and drill from the
// settings: WALDEN_VERIFY_SCHEDULE and WALDEN_DRILL_SCHEDULE ("off" disables).
func agentChecks(a *app, s *config.Settings, current func() *config.Settings, log *walelog.Logger) (*agent.Checks, error) {
	parse := func(name, v string) (*schedule.Spec, error) {
		if v == "off" {
			return nil, nil
		}
		spec, err := schedule.Parse(v)
		if err != nil {
			return nil, &config.Error{Var: name, Msg: err.Error()}
		}
		return spec, nil
	}
	vs, err := parse("WALDEN_VERIFY_SCHEDULE", s.Verify.Schedule)
	if err != nil {
		return nil, err
	}
	ds, err := parse("WALDEN_DRILL_SCHEDULE", s.Verify.DrillSchedule)
	if err != nil {
		return nil, err
	}
	return &agent.Checks{Checker: &agentChecker{a: a, current: current, log: log}, VerifySchedule: vs, DrillSchedule: ds}, nil
}

// agentChecker runs verify and drills with the agent's current settings.
type agentChecker struct {
	a       *app
	current func() *config.Settings
	log     *walelog.Logger
}

func (c *agentChecker) options(ctx context.Context) (verify.Options, *config.Settings, error) {
	s := c.current()
	st, err := open.Store(ctx, s)
	if err != nil {
		return verify.Options{}, s, err
	}
	cr, err := gpg.New(s.GPG)
	if err != nil {
		return verify.Options{}, s, err
	}
	o := verify.Options{Store: st, Prefix: s.Prefix, Backup: "", Concurrency: s.DownloadConcurrency,
		Retain: basebackup.RetainPolicy{Count: s.Retain.Count, Age: s.Retain.Age}}
	if cr != nil {
		o.Crypt = cr
	}
	return o, s, nil
}

func (c *agentChecker) Verify(ctx context.Context) (int, error) {
	o, _, err := c.options(ctx)
	if err != nil {
		return 0, err
	}
	rep, err := verify.Run(ctx, o)
	if err != nil {
		return 0, err
	}
	return len(rep.Problems), nil
}

func (c *agentChecker) Drill(ctx context.Context) (time.Duration, error) {
	o, s, err := c.options(ctx)
	if err != nil {
		return 0, err
	}
	o.Backup = "LATEST"
	res, err := verify.Drill(ctx, verify.DrillOptions{Verify: o, Log: c.log, DrillDir: s.Verify.DrillDir, RestoreCommand: c.a.drillRestoreCommand})
	if err != nil {
		return 0, err
	}
	return time.Duration(res.ReplaySeconds * float64(time.Second)), nil
}

// drillRestoreCommand is restore_command for a drill's data directory; a
// settings snapshot, when one is needed, lands beside it in the scratch
// directory and goes with it.
func (a *app) drillRestoreCommand(dataDir string) (string, error) {
	c, _, err := a.restoreCommand(dataDir)
	return c, err
}
