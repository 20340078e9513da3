package main

// restore lands with its own issue; until then it says so and exits non-zero.
var restoreCmd = &command{name: "restore", maxPos: -1, startMsg: false, run: notImplemented("restore")}
