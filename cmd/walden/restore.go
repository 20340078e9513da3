//go:build !walden_wal

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

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
	{long: "--force", help: "empty PGDATA first, as backup-fetch --force"},
	{long: "--no-archive", help: "write archive_mode = off into postgresql.auto.conf, so the restored server archives nothing into the store"},
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
	noArchive := p.flags["--no-archive"]
	if noArchive {
		a.log.Info(walelog.WaldenName, "the restored server will not archive",
			"--no-archive: archive_mode = off is written into postgresql.auto.conf.", "Turn archiving on (and restart) only once this server should feed "+a.settings.Prefix.Raw+".")
	} else {
		a.log.Warn(walelog.WaldenName, "the restored server will archive into the same prefix",
			"The restored data directory keeps the backed-up server's archive_mode and archive_command: once promoted it archives a new timeline into "+a.settings.Prefix.Raw+", beside the production one.",
			"For a test or side restore use --no-archive.")
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
	// After the fetch: the snapshot belongs to the data directory's owner.
	rc, snapshot, err := a.restoreCommand(pgdata)
	if err != nil {
		return err
	}
	if snapshot != "" {
		a.log.Info(walelog.WaldenName, "settings for restore_command saved",
			"The settings this restore used came from its environment; restore_command reads them from "+snapshot+" (mode 0700, owned by the data directory's owner).",
			"Remove that directory once the server no longer restores WAL.")
	}
	files, err := basebackup.WriteRecovery(pgdata, basebackup.RecoverySettings(rc, t))
	if err != nil {
		return err
	}
	if noArchive {
		if err := basebackup.DisableArchiving(pgdata, "walden restore --no-archive: this server archives nothing into the store"); err != nil {
			return err
		}
	}
	a.log.Info(walelog.WaldenName, "recovery configured", "Wrote "+strings.Join(files, " and ")+".", "")
	if !p.flags["--start"] {
		a.log.Info(walelog.WaldenName, "restore ready", "",
			fmt.Sprintf("Start PostgreSQL with: pg_ctl -D %s start (walden restore --start also checks that replay reached the end of the archive)", pgdata))
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
	stopFollow := a.followReplay(ctx, st, srv)
	err = srv.WaitPromoted(ctx, func(s string) { a.log.Info(walelog.WaldenName, "recovery in progress", s, "") })
	stopFollow(err == nil)
	if err != nil {
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

// restoreCommand is the restore_command the restored server runs: the
// program as the operator called it (so /opt/wal-e/bin/wal-e stays wal-e),
// the same global options, and the same settings. An envdir given with
// --envdir or WALDEN_ENVDIR is referenced; settings that came from the
// process environment (as with `envdir DIR walden restore`) are written
// to a snapshot envdir beside the data directory, owned by its owner,
// 0700/0600, and referenced with --envdir, so that no secret ends up in
// postgresql.auto.conf. It returns the command and the snapshot's path
// ("" when none was written).
func (a *app) restoreCommand(pgdata string) (string, string, error) {
	parts := []string{basebackup.ShellQuote(invokedAs())}
	hasEnvdir, hasPrefix := false, false
	for _, g := range a.globalArgs {
		hasEnvdir = hasEnvdir || g == "--envdir" || strings.HasPrefix(g, "--envdir=")
		hasPrefix = hasPrefix || strings.HasSuffix(strings.SplitN(g, "=", 2)[0], "-prefix")
		parts = append(parts, basebackup.ShellQuote(g))
	}
	snapshot := ""
	if !hasEnvdir {
		vars := settingsFromEnvironment()
		if len(vars) > 0 {
			var err error
			if snapshot, err = writeSettingsSnapshot(pgdata, vars); err != nil {
				return "", "", fmt.Errorf("writing the settings for restore_command: %w", err)
			}
			parts = append(parts, "--envdir", basebackup.ShellQuote(snapshot))
			hasEnvdir = true
		}
	}
	if !hasEnvdir && !hasPrefix && a.settings.HasPrefix {
		flag := map[string]string{"s3": "--s3-prefix", "gs": "--gs-prefix"}[a.settings.Prefix.Scheme]
		if flag == "" {
			flag = "--file-prefix"
		}
		parts = append(parts, flag, basebackup.ShellQuote(a.settings.Prefix.Raw))
	}
	return strings.Join(parts, " ") + ` wal-fetch -p 8 "%f" "%p"`, snapshot, nil
}

// invokedAs is the path the operator ran walden by, symlinks kept (argv0
// decides wal-e mode); the resolved executable when that cannot be found.
func invokedAs() string {
	a0 := os.Args[0]
	switch {
	case filepath.IsAbs(a0):
		return a0
	case strings.Contains(a0, "/"):
		if p, err := filepath.Abs(a0); err == nil {
			return p
		}
	default:
		if p, err := exec.LookPath(a0); err == nil {
			if abs, err := filepath.Abs(p); err == nil {
				return abs
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		return exe
	}
	return a0
}

// settingVarPrefixes are the environment variables walden and the
// libraries it uses read for storage, encryption and logging.
var settingVarPrefixes = []string{"WALE_", "WALDEN_", "AWS_", "GOOGLE_"}

var settingVars = map[string]bool{"STORAGE_EMULATOR_HOST": true, "GNUPGHOME": true}

// settingsFromEnvironment picks walden's settings out of the process
// environment, sorted by name.
func settingsFromEnvironment() [][2]string {
	var out [][2]string
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if k == "WALDEN_ENVDIR" || v == "" {
			continue
		}
		ok := settingVars[k]
		for _, p := range settingVarPrefixes {
			ok = ok || strings.HasPrefix(k, p)
		}
		if ok {
			out = append(out, [2]string{k, v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// writeSettingsSnapshot writes vars as a daemontools envdir outside the
// data directory: <parent>/.walden-restore-env-<name>, or in the owner's
// home directory when the parent is closed to walden. An earlier snapshot
// is replaced whole: it is built under a temporary name, then renamed.
func writeSettingsSnapshot(pgdata string, vars [][2]string) (string, error) {
	abs, err := filepath.Abs(pgdata)
	if err != nil {
		return "", err
	}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		if fi, err := os.Stat(abs); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				uid, gid = int(st.Uid), int(st.Gid)
			}
		}
	}
	name := ".walden-restore-env-" + filepath.Base(abs)
	dirs := []string{filepath.Dir(abs)}
	if uid >= 0 {
		if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.HomeDir != "" {
			dirs = append(dirs, u.HomeDir)
		}
	} else if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, h)
	}
	var firstErr error
	for _, d := range dirs {
		p, err := writeEnvdirAt(d, name, vars, uid, gid)
		if err == nil {
			return p, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return "", fmt.Errorf("%w (give the settings with --envdir instead)", firstErr)
}

func writeEnvdirAt(parent, name string, vars [][2]string, uid, gid int) (string, error) {
	final := filepath.Join(parent, name)
	tmp, err := os.MkdirTemp(parent, name+".tmp")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o700); err != nil {
		return "", err
	}
	for _, kv := range vars {
		p := filepath.Join(tmp, kv[0])
		if err := os.WriteFile(p, []byte(kv[1]+"\n"), 0o600); err != nil {
			return "", err
		}
		if uid >= 0 {
			if err := os.Chown(p, uid, gid); err != nil {
				return "", err
			}
		}
	}
	if uid >= 0 {
		if err := os.Chown(tmp, uid, gid); err != nil {
			return "", err
		}
	}
	if err := os.RemoveAll(final); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, nil
}
