package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

var restoreOpts = []opt{
	{long: "--backup", metavar: "NAME", help: "the backup to start from, or LATEST (default: the newest one that can reach the target)"},
	{long: "--target-time", metavar: "TIME", help: "recover up to this time (e.g. '2026-11-24 05:48:16+00'; no zone means UTC)"},
	{long: "--target-name", metavar: "NAME", help: "recover up to this pg_create_restore_point name"},
	{long: "--target-lsn", metavar: "LSN", help: "recover up to this WAL position"},
	{long: "--target-xid", metavar: "XID", help: "recover up to this transaction"},
	{long: "--immediate", help: "stop as soon as the backup is consistent"},
	{long: "--timeline", metavar: "TIMELINE", help: "latest (default), current, or a timeline number"},
	{long: "--start", help: "start PostgreSQL and wait until recovery has finished"},
	{long: "--pool-size", short: "-p", metavar: "POOL_SIZE", isInt: true, help: "partitions downloaded at once (default WALDEN_DOWNLOAD_CONCURRENCY)"},
	{long: "--blind-restore", help: "do not check that tablespace symlinks exist"},
	{long: "--restore-spec", metavar: "RESTORE_SPEC", help: "JSON tablespace restore spec, or SOURCE for the backup's own"},
}

var restoreCmd = &command{
	name: "restore", desc: "point-in-time restore: fetch the right backup and configure recovery",
	opts: restoreOpts, positionals: []string{"PGDATA"}, minPos: 1, maxPos: 1,
	run: runRestore,
}

func runRestore(ctx context.Context, a *app, p *args) error {
	prog := a.prog + " restore"
	usage := usageLine(prog, restoreOpts, []string{"PGDATA"})
	fail := func(msg string) error { return exitStatus(a.usageFail(usage, prog, msg)) }
	var t basebackup.Target
	t.Time, _ = p.str("--target-time")
	t.Name, _ = p.str("--target-name")
	t.LSN, _ = p.str("--target-lsn")
	t.XID, _ = p.str("--target-xid")
	t.Immediate = p.flags["--immediate"]
	given := 0
	for _, s := range []string{t.Time, t.Name, t.LSN, t.XID} {
		if s != "" {
			given++
		}
	}
	if t.Immediate {
		given++
	}
	if given > 1 {
		return fail("at most one of --target-time, --target-name, --target-lsn, --target-xid and --immediate")
	}
	if t.Time != "" {
		if _, err := basebackup.ParseTargetTime(t.Time); err != nil {
			return fail("argument --target-time: " + err.Error())
		}
	}
	if t.LSN != "" {
		if _, err := basebackup.ParseLSN(t.LSN); err != nil {
			return fail("argument --target-lsn: " + err.Error())
		}
	}
	if t.XID != "" {
		if _, err := strconv.ParseUint(t.XID, 10, 64); err != nil {
			return fail(fmt.Sprintf("argument --target-xid: invalid transaction id '%s'", t.XID))
		}
	}
	t.Timeline, _ = p.str("--timeline")
	if tl := t.Timeline; tl != "" && tl != "latest" && tl != "current" {
		if n, err := strconv.ParseUint(tl, 10, 32); err != nil || n == 0 {
			return fail(fmt.Sprintf("argument --timeline: want latest, current or a timeline number, not '%s'", tl))
		}
	}
	pgdata := p.pos[0]

	st, err := a.store(ctx)
	if err != nil {
		return err
	}
	name, _ := p.str("--backup")
	b, err := basebackup.ChooseBackup(ctx, st, name, t)
	if err != nil {
		return err
	}
	a.log.Info(walelog.WaldenName, "restoring base backup", fmt.Sprintf("Starting from %s.", b.Name), "", walelog.F("backup", b.Name))
	res, err := a.fetchBackup(ctx, p, pgdata, b.Name)
	if err != nil {
		return err
	}
	if len(res.ConfigMissing) > 0 {
		if err := basebackup.WriteMissingConfig(pgdata, res.ConfigMissing); err != nil {
			return err
		}
		a.log.Info(walelog.WaldenName, "wrote minimal configuration",
			fmt.Sprintf("Wrote %s with PostgreSQL's defaults (pg_hba.conf: local all postgres peer).", strings.Join(res.ConfigMissing, ", ")),
			"Review them before putting this server in service.")
	}
	files, err := basebackup.WriteRecovery(pgdata, basebackup.RecoverySettings(a.restoreCommand(), t))
	if err != nil {
		return err
	}
	a.log.Info(walelog.WaldenName, "recovery configured", "Wrote "+strings.Join(files, " and ")+".", "")
	if !p.flags["--start"] {
		a.log.Info(walelog.WaldenName, "restore ready", "", fmt.Sprintf("Start PostgreSQL with: pg_ctl -D %s start", pgdata))
		return nil
	}
	srv, err := basebackup.NewServer(pgdata)
	if err != nil {
		return err
	}
	if err := a.recoverAndCheck(ctx, st, srv); err != nil {
		return err
	}
	a.log.Info(walelog.WaldenName, "recovery complete", fmt.Sprintf("PostgreSQL on %s has finished recovery from %s and accepts writes.", pgdata, b.Name), "")
	return nil
}

// recoverAndCheck runs recovery with archiving held back, then checks
// that replay used all the WAL the archive holds for the recovered
// timeline. PostgreSQL takes a missing or unreadable segment for the end
// of WAL and promotes there; until the check passes the promoted server
// must not archive its new timeline into the production prefix, so it
// runs with archive_command overridden on the command line (the .ready
// files still accumulate and are archived after the restart that follows
// a passing check). A failing check stops the server and turns archiving
// off in its configuration.
func (a *app) recoverAndCheck(ctx context.Context, st storage.Store, srv *basebackup.Server) error {
	major, err := basebackup.MajorVersion(srv.PGData)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx, basebackup.NoArchivingOpts(major)...); err != nil {
		return err
	}
	a.log.Info(walelog.WaldenName, "PostgreSQL started, waiting for recovery to finish", "Server log: "+srv.LogFile+". Archiving is held back until walden has checked the recovered WAL.", "")
	if err := srv.WaitPromoted(ctx, func(s string) { a.log.Info(walelog.WaldenName, "recovery in progress", s, "") }); err != nil {
		return err
	}
	checkErr := a.checkReplayEnd(ctx, st, srv)
	if err := srv.Stop(ctx); err != nil {
		return err
	}
	if checkErr != nil {
		if err := basebackup.DisableArchiving(srv.PGData, "walden restore: replay stopped before the end of the archive; this data directory must not archive its new timeline"); err != nil {
			a.log.Warn(walelog.WaldenName, "could not turn archiving off in the failed restore", err.Error(), "")
		}
		var ue *walelog.UserError
		if errors.As(checkErr, &ue) {
			ue.Hint += " PostgreSQL on " + srv.PGData + " was stopped and archive_mode set to off there: do not use this data directory."
		}
		return checkErr
	}
	return srv.StartReady(ctx)
}

// checkReplayEnd compares where replay ended (the new timeline's history
// file) with the archive's listing of the recovered timeline.
func (a *app) checkReplayEnd(ctx context.Context, st storage.Store, srv *basebackup.Server) error {
	out, err := srv.Query(ctx, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) || ' ' || pg_size_bytes(current_setting('wal_segment_size'))")
	if err != nil {
		return fmt.Errorf("reading the recovered timeline: %w", err)
	}
	tliHex, sizeStr, _ := strings.Cut(out, " ")
	tli, err1 := strconv.ParseUint(tliHex, 16, 32)
	segSize, err2 := strconv.ParseUint(sizeStr, 10, 64)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("reading the recovered timeline: unexpected answer %q", out)
	}
	sp, err := basebackup.ReadSwitchPoint(srv.PGData, uint32(tli))
	if err != nil {
		return fmt.Errorf("reading where replay ended: %w", err)
	}
	return basebackup.CheckReplayReachedArchiveEnd(ctx, st, sp, segSize)
}

// restoreCommand is the restore_command calling this same walden binary
// with the same global options (and so the same envdir). Settings that came
// only from this shell's environment are not seen by the server; the
// prefix is passed along so at least the store is the same.
func (a *app) restoreCommand() string {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	parts := []string{basebackup.ShellQuote(exe)}
	hasEnvdir, hasPrefix := false, false
	for _, g := range a.globalArgs {
		hasEnvdir = hasEnvdir || g == "--envdir" || strings.HasPrefix(g, "--envdir=")
		hasPrefix = hasPrefix || strings.HasSuffix(strings.SplitN(g, "=", 2)[0], "-prefix")
		parts = append(parts, basebackup.ShellQuote(g))
	}
	if !hasEnvdir && !hasPrefix && a.settings.HasPrefix {
		flag := map[string]string{"s3": "--s3-prefix", "gs": "--gs-prefix"}[a.settings.Prefix.Scheme]
		if flag == "" {
			flag = "--file-prefix"
		}
		parts = append(parts, flag, basebackup.ShellQuote(a.settings.Prefix.Raw))
	}
	return strings.Join(parts, " ") + ` wal-fetch -p 8 "%f" "%p"`
}
