package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/walden-pg/walden/wal"
)

var walPrefetchCmd = &command{
	name: "wal-prefetch", desc: "internal: prefetch a WAL segment (spawned by wal-fetch)",
	positionals: []string{"BASE_DIRECTORY", "SEGMENT"}, minPos: 2, maxPos: 2,
	run: func(ctx context.Context, a *app, p *args) error {
		ar, err := a.walArchive(ctx)
		if err != nil {
			return err
		}
		if err := ar.Prefetch(ctx, p.pos[0], p.pos[1]); err != nil {
			if errors.Is(err, wal.ErrNotFound) {
				fmt.Fprintf(a.stderr, "Failed to prefetch %s\n", p.pos[1])
				return exitStatus(1)
			}
			return err
		}
		return nil
	},
}
