//go:build walden_wal

// Built with the walden_wal tag, this package is the WAL program
// (/usr/lib/walden/walden-wal): wal-push, wal-fetch and wal-prefetch for
// S3 and file stores, and nothing else. archive_command and
// restore_command start a process per segment, and most of the full
// program's start-up is packages these commands never use: the GCS
// client, the agent with its metrics, base backups and libpq. The front
// (/usr/bin/walden) runs this program for those commands once it has
// parsed their arguments and configuration, when the prefix is not gs://
// and the agent did not serve the call; everything else goes to the full
// program. The code that runs is the full program's own: the same files,
// minus the ones for other commands.

package main

import "context"

// commands are the WAL program's subcommands (version too, so that it can
// say which build it is).
func commands() []*command {
	return []*command{versionCmd, walPushCmd, walFetchCmd, walPrefetchCmd}
}

// handOff does not ask the agent: the front ran this program because the
// agent was absent or declined the call, and asking again would cost a
// round trip for the same answer. (The agent also checks that a client is
// the program it runs itself, and this one is not.)
func (a *app) handOff(context.Context, string, *args) (bool, error) { return false, nil }

// handOffFetch: as handOff.
func (a *app) handOffFetch(context.Context, *args) (bool, error) { return false, nil }
