// Package fastpath is the unix-socket protocol by which short-lived
// wal-push and wal-fetch processes hand their work to a running agent.
//
// One connection carries one request. The client sends a request frame;
// the agent answers with a refusal, or with the command's stdout and stderr
// as they are written, then its exit status. Every frame is a type byte, a
// big-endian uint32 length and the payload.
package fastpath

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Version is bumped whenever the request or the frames change meaning.
const Version = 3

const (
	frameRequest = 'Q' // JSON Request
	frameStdout  = 'O' // raw bytes
	frameStderr  = 'E' // raw bytes
	frameExit    = 'X' // JSON exit
	frameRefuse  = 'R' // reason text
	maxFrame     = 16 << 20
)

// Request is one wal-push or wal-fetch, as parsed by the client, or a
// CommandCheck.
type Request struct {
	Version     int               `json:"version"`
	Fingerprint string            `json:"fingerprint"`
	Command     string            `json:"command"`
	Positionals []string          `json:"positionals"`
	Options     map[string]string `json:"options,omitempty"`
	Flags       map[string]bool   `json:"flags,omitempty"`
	Cwd         string            `json:"cwd"`
	Pid         int               `json:"pid"`
	Prog        string            `json:"prog"`
	GlobalArgs  []string          `json:"global_args,omitempty"`
	Terse       bool              `json:"terse,omitempty"`
	Log         *LogShape         `json:"log,omitempty"` // the client's logging (log.go)

	// Receive: the client writes the fetched file itself from data
	// frames (fetch_wire.go); the agent does not touch the destination.
	Receive bool `json:"receive,omitempty"`

	// Files: the client also takes the fetched file as an open file
	// descriptor (frameFile), which it links or copies in the kernel.
	Files bool `json:"files,omitempty"`
}

// CommandCheck asks the agent to run `walden check`'s store and data
// directory checks itself, inside its service sandbox; stdout carries the
// JSON report. Options["timeout"] is the limit per part in seconds.
const CommandCheck = "check-service"

type exitMsg struct {
	Status int `json:"status"`
}

func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	// One write per frame keeps frames whole when writers share the conn.
	buf := make([]byte, 0, len(hdr)+len(payload))
	buf = append(append(buf, hdr[:]...), payload...)
	_, err := w.Write(buf)
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) { return readFrameInto(r, nil) }

// readFrameInto is readFrame reusing buf for frames that fit: the file's
// bytes come in frames of the agent's 1 MiB buffer.
func readFrameInto(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("fastpath: frame of %d bytes is too large", n)
	}
	p := buf
	if int(n) > len(buf) {
		p = make([]byte, n)
	}
	p = p[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

func writeJSON(w io.Writer, typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFrame(w, typ, b)
}

// stream is an io.Writer that sends each Write as one frame of its type.
type stream struct {
	mu    *sync.Mutex
	w     io.Writer
	typ   byte
	wrote *bool
	err   *error
}

func (s stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.wrote = true
	if *s.err != nil {
		// The client is gone; the command still finishes its work.
		return len(p), nil
	}
	if err := writeFrame(s.w, s.typ, p); err != nil {
		*s.err = err
	}
	return len(p), nil
}

// ErrRefused is wrapped by the client's error when the agent declined the
// request; the caller then does the work itself.
var ErrRefused = errors.New("the agent refused the request")

// ErrUnavailable is wrapped when no agent answers on the socket.
var ErrUnavailable = errors.New("no agent on the socket")
