package main

// check lands with its own issue; until then it says so and exits non-zero.
var checkCmd = &command{name: "check", maxPos: -1, startMsg: false, run: notImplemented("check")}
