package main

// delete lands with its own issue; until then it says so and exits non-zero.
var deleteCmd = &command{name: "delete", maxPos: -1, startMsg: false, run: notImplemented("delete")}
