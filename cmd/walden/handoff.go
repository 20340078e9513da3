//go:build !walden_wal

package main

import (
	"context"

	"github.com/walden-pg/walden/agent/fastpath"
)

// handOff gives a wal-push or wal-fetch to the agent serving the
// configured socket (fastpath.HandOff). handled is false when the caller
// must do the work itself.
func (a *app) handOff(ctx context.Context, name string, p *args) (handled bool, err error) {
	handled, status, err := fastpath.HandOff(ctx, a.settings, a.fastRequest(name, p), a.stdout, a.stderr)
	return handOffResult(handled, status, err)
}

// handOffFetch gives a wal-fetch to the agent, which sends the file's
// bytes; this process writes %p itself. As handOff otherwise.
func (a *app) handOffFetch(ctx context.Context, p *args) (handled bool, err error) {
	handled, status, err := fastpath.HandOffFetch(ctx, a.settings, a.fastRequest("wal-fetch", p), p.pos[1], a.stdout, a.stderr)
	return handOffResult(handled, status, err)
}

// fastRequest is this call as the agent is asked to serve it.
func (a *app) fastRequest(name string, p *args) *fastpath.Request {
	return &fastpath.Request{
		Command:     name,
		Positionals: p.pos,
		Options:     p.vals,
		Flags:       p.flags,
		Prog:        a.prog,
		GlobalArgs:  a.globalArgs,
		Terse:       a.flags.Terse,
	}
}

// handOffResult turns the agent's answer into the command's result: a
// non-zero status is this process's exit status, without a log line of
// its own (the agent's lines were printed).
func handOffResult(handled bool, status int, err error) (bool, error) {
	switch {
	case !handled:
		return false, nil
	case err != nil:
		return true, err
	case status != 0:
		return true, exitStatus(status)
	}
	return true, nil
}
