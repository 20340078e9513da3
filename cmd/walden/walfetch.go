package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/walden-pg/walden/gpg"
	"github.com/walden-pg/walden/internal/cli"
	"github.com/walden-pg/walden/wal"
)

// exitFetchFailed is wal-fetch's exit status for every failure other than
// "not in the archive" (1): store errors, corrupt or undecryptable
// objects, segments failing their checks, a gap in the archive, an
// unwritable destination, bad names or configuration. PostgreSQL takes
// any status above 125 from restore_command as fatal and stops recovery,
// where 1 would make it end recovery and promote early.
const exitFetchFailed = 200

var walFetchCmd = &command{
	name: "wal-fetch", desc: "restore a WAL file (restore_command's %f %p); exits 0 when restored, 1 when the archive does not hold the file, 200 on any other failure",
	opts:        walFetchOpts,
	positionals: walFetchPositionals, minPos: 2, maxPos: 2,
	configFail: exitFetchFailed,
	run: func(ctx context.Context, a *app, p *args) error {
		if err := wal.ValidName(p.pos[0]); err != nil {
			return a.fetchUsageError(err)
		}
		if handled, err := a.handOffFetch(ctx, p); handled {
			return err
		}
		ar, err := a.walArchive(ctx)
		if err != nil {
			a.fail(err)
			return exitStatus(exitFetchFailed)
		}
		return fetchWith(ctx, a, ar, p, a.spawnPrefetch)
	},
}

var (
	walFetchOpts        = optsOf(cli.WalFetchOptions)
	walFetchPositionals = []string{"WAL_SEGMENT", "WAL_DESTINATION"}
)

// fetchUsageError reports a bad WAL file name the way argument errors are
// reported, with wal-fetch's failure status: a restore_command with its
// arguments swapped must stop recovery, not read as "not found".
func (a *app) fetchUsageError(err error) error {
	prog := a.prog + " wal-fetch"
	fmt.Fprintf(a.stderr, "%s\n%s: error: %s\n", usageLine(prog, walFetchOpts, walFetchPositionals), prog, err)
	return exitStatus(exitFetchFailed)
}

// walArchive is the archive with wal-fetch/wal-push's safety settings.
func (a *app) walArchive(ctx context.Context) (*wal.Archive, error) {
	ar, err := a.archive(ctx)
	if err != nil {
		return nil, err
	}
	return ar, a.walSafety(ar)
}

// walSafety sets how an archive reads objects: a store configured for
// encryption (key id or key file) must hand out encrypted objects unless
// plaintext is explicitly allowed, and with no recipient configured the
// secret key file or the keyring decrypts.
func (a *app) walSafety(ar *wal.Archive) error {
	g := a.settings.GPG
	ar.RequireEncrypted = g.KeyID != "" || g.PublicKeyPath != "" || g.SecretKeyPath != ""
	ar.AllowPlaintext = a.settings.AllowPlaintext
	ar.GapGrace = wal.DefaultGapGrace
	if ar.Crypt == nil {
		d, err := gpg.NewDecrypter(g)
		if err != nil {
			return err
		}
		if d != nil {
			ar.Crypt = d
		}
	}
	return nil
}

// fetchWith is wal-fetch on a given archive, shared with the agent's fast path.
func fetchWith(ctx context.Context, a *app, ar *wal.Archive, p *args, spawn wal.Spawner) error {
	err := ar.Fetch(ctx, p.pos[0], p.pos[1], p.int("--prefetch", 8), spawn)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, wal.ErrNotFound):
		// 1 tells PostgreSQL "not available": the end of the archive.
		return exitStatus(1)
	}
	var ne *wal.NameError
	if errors.As(err, &ne) {
		return a.fetchUsageError(err)
	}
	if ctx.Err() != nil {
		// Stopped by a signal (PostgreSQL shutting down): as before.
		a.fail(err)
		return exitStatus(1)
	}
	a.fail(err)
	return exitStatus(exitFetchFailed)
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
