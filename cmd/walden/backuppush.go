//go:build !walden_wal

package main

import (
	"context"
	"fmt"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/walelog"
)

var backupPushCmd = &command{
	name: "backup-push", desc: "take a base backup of a PostgreSQL data directory",
	opts: []opt{
		{long: "--pool-size", short: "-p", metavar: "POOL_SIZE", isInt: true, help: "partitions compressed and uploaded at once (default WALDEN_UPLOAD_CONCURRENCY)"},
		{long: "--cluster-read-rate-limit", metavar: "CLUSTER_READ_RATE_LIMIT", isInt: true, help: "bytes per second read from the data directory (default WALDEN_DISK_RATE_LIMIT)"},
		{long: "--while-offline", help: "back up a stopped cluster, positioned by pg_controldata"},
		{long: "--full", help: "take a full backup even when WALDEN_DELTA_MAX_STEPS would make this one a delta"},
	},
	positionals: []string{"PG_CLUSTER_DIRECTORY"}, minPos: 1, maxPos: 1,
	startMsg: true,
	run:      runBackupPush,
}

func runBackupPush(ctx context.Context, a *app, p *args) error {
	pool := p.int("--pool-size", a.settings.UploadConcurrency)
	if pool < 1 {
		return &walelog.UserError{Msg: "invalid pool size", Detail: fmt.Sprintf("--pool-size must be at least 1, not %d.", pool)}
	}
	rate := a.settings.DiskRateLimit
	if _, ok := p.str("--cluster-read-rate-limit"); ok {
		rate = int64(p.int("--cluster-read-rate-limit", 0))
		if rate < 1 {
			return &walelog.UserError{Msg: "invalid read rate limit", Detail: fmt.Sprintf("--cluster-read-rate-limit must be at least 1 byte per second, not %d.", rate)}
		}
	}
	st, err := a.store(ctx)
	if err != nil {
		return err
	}
	f, err := a.format()
	if err != nil {
		return err
	}
	bar := a.startTransfer("backup-push", 0)
	res, err := basebackup.Push(ctx, basebackup.PushOptions{
		Store: st, Prefix: a.settings.Prefix, Format: f, Log: a.log,
		PGData:           p.pos[0],
		Concurrency:      pool,
		PartitionSize:    a.settings.PartitionSize,
		RateLimit:        rate,
		NetworkRateLimit: a.settings.NetworkRateLimit,
		Offline:          p.flags["--while-offline"],
		WALTimeout:       a.settings.BackupWALTimeout,
		DeltaMaxSteps:    a.settings.DeltaMaxSteps,
		Full:             p.flags["--full"],
		Progress:         bar.pushProgress,
	})
	bar.end(err)
	if err != nil {
		return err
	}
	secs := res.FinishTime.Sub(res.StartTime).Seconds()
	kind, read := "", res.Size
	if res.Parent != "" {
		// A delta reads every page but holds only the changed ones.
		kind, read = fmt.Sprintf(" (delta of %s)", res.Parent), res.Read
	}
	a.log.Info(walelog.WaldenName, "base backup complete",
		fmt.Sprintf("Backup %s%s: %d bytes read in %.1f s (%.1f MiB/s), %d bytes stored in %d volumes.",
			res.Name, kind, read, secs, float64(read)/(1<<20)/max(secs, 0.001), res.Stored, res.Partitions), "",
		walelog.F("backup", res.Name))
	return nil
}
