package main

// backup-fetch lands with its own issue; until then it says so and exits non-zero.
var backupFetchCmd = &command{name: "backup-fetch", maxPos: -1, startMsg: true, run: notImplemented("backup-fetch")}
