package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/walden-pg/walden/internal/cli"
	"github.com/walden-pg/walden/wal"
	"github.com/walden-pg/walden/walelog"
)

var walPushCmd = &command{
	name: "wal-push", desc: "archive a WAL file (archive_command's %p)",
	opts:        optsOf(cli.WalPushOptions),
	positionals: []string{"WAL_SEGMENT"}, minPos: 1, maxPos: 1,
	run: func(ctx context.Context, a *app, p *args) error {
		if handled, err := a.handOff(ctx, "wal-push", p); handled {
			return err
		}
		ar, err := a.walArchive(ctx)
		if err != nil {
			return err
		}
		return pushWith(ctx, a, ar, p)
	},
}

// pushWith is wal-push on a given archive, shared with the agent's fast
// path so that both print exactly the same.
func pushWith(ctx context.Context, a *app, ar *wal.Archive, p *args) error {
	err := ar.Push(ctx, p.pos[0], p.int("--pool-size", 32))
	var mf *wal.MissingFileError
	if errors.As(err, &mf) {
		// WAL-E printed the OS error on stdout; kept for scripts that saw it.
		fmt.Fprintln(a.stdout, mf.Error())
		return &walelog.UserError{Msg: "could not find file for wal-push",
			Detail: fmt.Sprintf("The operating system reported: No such file or directory '%s'", mf.Path)}
	}
	return err
}
