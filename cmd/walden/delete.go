//go:build !walden_wal

package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/walelog"
)

var (
	deleteOpts = []opt{
		{long: "--dry-run", short: "-n", help: "only say what would be deleted (the default)"},
		{long: "--confirm", help: "really delete"},
	}
	deletePositionals = []string{"{before,retain,old-versions,everything}", "..."}
)

var deleteCmd = &command{
	name: "delete", desc: "delete base backups and WAL from the store (a dry run unless --confirm)",
	opts: deleteOpts, positionals: deletePositionals, minPos: 0, maxPos: -1,
	startMsg: false, // logged after the mode is known: "delete retain", ...
	run:      runDelete,
}

func runDelete(ctx context.Context, a *app, p *args) error {
	prog := a.prog + " delete"
	usage := usageLine(prog, deleteOpts, deletePositionals)
	fail := func(msg string) error { return exitStatus(a.usageFail(usage, prog, msg)) }
	if len(p.pos) == 0 {
		return fail("the following arguments are required: MODE")
	}
	if p.lateOpt != "" {
		// argparse took delete's flags only before the mode word.
		return fail("unrecognized arguments: " + p.lateOpt)
	}
	mode, rest := p.pos[0], p.pos[1:]
	want := map[string]int{"before": 1, "retain": 1, "old-versions": 0, "everything": 0}
	n, known := want[mode]
	switch {
	case !known:
		return fail(fmt.Sprintf("argument MODE: invalid choice: '%s' (choose from 'before', 'retain', 'old-versions', 'everything')", mode))
	case len(rest) < n && mode == "before":
		return fail("the following arguments are required: BEFORE_SEGMENT_EXCLUSIVE")
	case len(rest) < n:
		return fail("the following arguments are required: NUM_TO_RETAIN")
	case len(rest) > n:
		return fail("unrecognized arguments: " + strings.Join(rest[n:], " "))
	}
	var keep int
	if mode == "retain" {
		v, err := strconv.Atoi(rest[0])
		if err != nil {
			return fail(fmt.Sprintf("argument NUM_TO_RETAIN: invalid int value: '%s'", rest[0]))
		}
		if v < 1 {
			return fail(fmt.Sprintf("argument NUM_TO_RETAIN: must be at least 1, not %d", v))
		}
		keep = v
	}
	if mode == "before" {
		if _, err := basebackup.Horizon(rest[0]); err != nil {
			return err
		}
	}

	a.log.Info(walelog.Main, "starting WAL-E", fmt.Sprintf("The subcommand is %q.", "delete "+mode), "")
	st, err := a.store(ctx)
	if err != nil {
		return err
	}
	dry := !(p.flags["--confirm"] && !p.flags["--dry-run"])
	if dry {
		a.log.Info(walelog.Main, "performing dry run of data deletion", "", "")
	} else {
		a.log.Info(walelog.Main, "deleting data in the store", "", "")
	}
	o := basebackup.DeleteOptions{Store: st, Prefix: a.settings.Prefix, Log: a.log, DryRun: dry, PGData: a.settings.PGData}
	switch mode {
	case "before":
		return basebackup.DeleteBefore(ctx, o, rest[0])
	case "retain":
		return basebackup.DeleteRetain(ctx, o, keep)
	case "everything":
		return basebackup.DeleteEverything(ctx, o)
	}
	return basebackup.DeleteOldVersions(ctx, o)
}
