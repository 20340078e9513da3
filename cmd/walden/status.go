package main

// status lands with its own issue; until then it says so and exits non-zero.
var statusCmd = &command{name: "status", maxPos: -1, startMsg: false, run: notImplemented("status")}
