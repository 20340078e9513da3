package main

// backup-push lands with its own issue; until then it says so and exits non-zero.
var backupPushCmd = &command{name: "backup-push", maxPos: -1, startMsg: true, run: notImplemented("backup-push")}
