// Package fastpath is the client side of the unix-socket protocol by which
// short-lived wal-push and wal-fetch processes hand their work to a
// running agent (the agent's side is package server). The front program
// that archive_command runs imports it, so it links nothing heavy: no
// cloud SDKs, no encoding/json, no net.
package fastpath

import (
	"errors"

	"github.com/walden-pg/walden/agent/fastpath/internal/wire"
	"github.com/walden-pg/walden/config"
)

// Version is the protocol's version, bumped whenever the request or the
// frames change meaning.
const Version = wire.Version

// Request is one wal-push or wal-fetch as parsed by the client, or a
// CommandCheck.
type Request = wire.Request

// LogShape is where and how the client would log.
type LogShape = wire.LogShape

// CommandCheck asks the agent to run `walden check`'s store and data
// directory checks itself, inside its service sandbox.
const CommandCheck = wire.CommandCheck

// LogShapeOf is the logging settings of s.
func LogShapeOf(s *config.Settings) *LogShape { return wire.LogShapeOf(s) }

// ErrRefused is wrapped by the client's error when the agent declined the
// request; the caller then does the work itself.
var ErrRefused = errors.New("the agent refused the request")

// ErrUnavailable is wrapped when no agent answers on the socket.
var ErrUnavailable = errors.New("no agent on the socket")
