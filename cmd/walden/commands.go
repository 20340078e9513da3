//go:build !walden_wal

package main

// commands are the full program's subcommands.
func commands() []*command {
	return []*command{
		versionCmd, walPushCmd, walFetchCmd, walPrefetchCmd,
		backupPushCmd, backupFetchCmd, backupListCmd, deleteCmd,
		restoreCmd, agentCmd, statusCmd, checkCmd,
		verifyCmd,
	}
}
