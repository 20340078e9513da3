package main

// agent lands with its own issue; until then it says so and exits non-zero.
var agentCmd = &command{name: "agent", maxPos: -1, startMsg: false, run: notImplemented("agent")}
