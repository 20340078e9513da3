package main

import (
	"context"
	"fmt"
)

var versionCmd = &command{
	name: "version", desc: "print the version", maxPos: 0, noConfig: true,
	run: func(_ context.Context, a *app, _ *args) error {
		// Invoked as wal-e, keep WAL-E's version prefix for scripts that parse it.
		if a.walE {
			fmt.Fprintf(a.stdout, "1.1.1+walden.%s\n", version)
		} else {
			fmt.Fprintf(a.stdout, "walden %s\n", version)
		}
		return nil
	},
}
