package main

// backup-list lands with its own issue; until then it says so and exits non-zero.
var backupListCmd = &command{name: "backup-list", maxPos: -1, startMsg: true, run: notImplemented("backup-list")}
