package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"

	"github.com/walden-pg/walden/wal"
)

var walFetchCmd = &command{
	name: "wal-fetch", desc: "restore a WAL file (restore_command's %f %p)",
	opts:        []opt{{long: "--prefetch", short: "-p", metavar: "PREFETCH", isInt: true, help: "prefetch this many following segments in the background (default 8)"}},
	positionals: []string{"WAL_SEGMENT", "WAL_DESTINATION"}, minPos: 2, maxPos: 2,
	run: func(ctx context.Context, a *app, p *args) error {
		if handled, err := a.handOff(ctx, "wal-fetch", p); handled {
			return err
		}
		ar, err := a.archive(ctx)
		if err != nil {
			return err
		}
		return fetchWith(ctx, ar, p, a.spawnPrefetch)
	},
}

// fetchWith is wal-fetch on a given archive, shared with the agent's fast path.
func fetchWith(ctx context.Context, ar *wal.Archive, p *args, spawn wal.Spawner) error {
	err := ar.Fetch(ctx, p.pos[0], p.pos[1], p.int("--prefetch", 8), spawn)
	if errors.Is(err, wal.ErrNotFound) {
		// 1 tells PostgreSQL "not available"; never above 125.
		return exitStatus(1)
	}
	return err
}

// spawnPrefetch starts a detached `wal-prefetch BASE SEG` that outlives
// this call: its own session, stdio on /dev/null, run from /.
func (a *app) spawnPrefetch(base, seg string) error {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	args := append(append([]string{}, a.globalArgs...), "wal-prefetch", base, seg)
	c := exec.Command(exe, args...)
	c.Args[0] = os.Args[0] // keeps wal-e mode when invoked as wal-e
	c.Dir = "/"
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return err
	}
	return c.Process.Release()
}
