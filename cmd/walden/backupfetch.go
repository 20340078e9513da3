//go:build !walden_wal

package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/walelog"
)

var backupFetchCmd = &command{
	name: "backup-fetch", desc: `restore a base backup into an empty directory

After the fetch, configure recovery before starting PostgreSQL. PostgreSQL 12
and later refuse to start with a recovery.conf: put restore_command (and any
recovery_target_*) into postgresql.conf or postgresql.auto.conf and create an
empty recovery.signal in the data directory. "walden restore" does all of it
(backup, restore_command, target, start, and a check that replay reached the
end of the archive).

BACKUP_NAME may name a delta backup (or LATEST be one): its whole chain is
checked (every member, parent link, file list and partition) before anything
is written, then restored in one pass.

A failed fetch leaves an incomplete directory (without global/pg_control,
so PostgreSQL will not start on it); a new attempt refuses it with "restore
target is not empty" unless given --force.`,
	opts: []opt{
		{long: "--pool-size", short: "-p", metavar: "POOL_SIZE", isInt: true, help: "partitions downloaded and extracted at once (default WALDEN_DOWNLOAD_CONCURRENCY)"},
		{long: "--blind-restore", help: "do not check that tablespace symlinks exist"},
		{long: "--restore-spec", metavar: "RESTORE_SPEC", help: "JSON tablespace restore spec, or SOURCE for the backup's own"},
		{long: "--force", help: "empty the target first (keeps postgresql.conf, pg_hba.conf, pg_ident.conf, signal files and tablespace links), e.g. after a failed fetch; a running cluster is still refused"},
	},
	positionals: []string{"PG_CLUSTER_DIRECTORY", "BACKUP_NAME"}, minPos: 2, maxPos: 2,
	startMsg: true,
	run: func(ctx context.Context, a *app, p *args) error {
		_, err := a.fetchBackup(ctx, p, p.pos[0], p.pos[1])
		return err
	},
}

// fetchBackup is backup-fetch, shared with restore.
func (a *app) fetchBackup(ctx context.Context, p *args, pgdata, name string) (basebackup.FetchResult, error) {
	pool := p.int("--pool-size", a.settings.DownloadConcurrency)
	if pool < 1 {
		return basebackup.FetchResult{}, &walelog.UserError{Msg: "invalid pool size", Detail: fmt.Sprintf("--pool-size must be at least 1, not %d.", pool)}
	}
	st, err := a.store(ctx)
	if err != nil {
		return basebackup.FetchResult{}, err
	}
	cr, err := a.crypter()
	if err != nil {
		return basebackup.FetchResult{}, err
	}
	spec, _ := p.str("--restore-spec")
	bar := a.startTransfer("backup-fetch", 0)
	res, err := basebackup.Fetch(ctx, basebackup.FetchOptions{
		Store: st, Prefix: a.settings.Prefix, Crypt: cr, Log: a.log,
		PGData: pgdata, Backup: name, Concurrency: pool,
		BlindRestore: p.flags["--blind-restore"], RestoreSpec: spec, Force: p.flags["--force"],
		Progress: bar,
	})
	bar.end(err)
	if err != nil {
		return res, err
	}
	a.log.Info(walelog.WaldenName, "base backup restored",
		fmt.Sprintf("Restored %s into %s: %d files, %d bytes from %d volumes.", res.Backup.Name, pgdata, res.Files, res.Bytes, res.Partitions), "",
		walelog.F("backup", res.Backup.Name))
	if len(res.ConfigMissing) > 0 {
		a.log.Info(walelog.WaldenName, "configuration files missing",
			fmt.Sprintf("The backup holds no %s (WAL-E never backed them up).", strings.Join(res.ConfigMissing, ", ")),
			"Put them in place before starting PostgreSQL.")
	}
	return res, nil
}
