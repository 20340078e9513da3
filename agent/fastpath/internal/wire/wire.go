// Package wire is the fast path's protocol, shared by its client
// (package fastpath) and the agent's server (package server).
//
// One connection carries one request. The client sends a request frame;
// the agent answers with a refusal, or with the command's stdout and stderr
// as they are written, then its exit status. Every frame is a type byte, a
// big-endian uint32 length and the payload. The request and the exit
// status are encoded by hand (request.go): encoding/json's reflection
// would cost the front more than the rest of its request.
package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Version is bumped whenever the request or the frames change meaning.
const Version = 4

// Frame types.
const (
	FrameRequest = 'Q' // Request (request.go)
	FrameStdout  = 'O' // raw bytes
	FrameStderr  = 'E' // raw bytes
	FrameExit    = 'X' // exit status (AppendExit)
	FrameRefuse  = 'R' // reason text
	maxFrame     = 16 << 20
)

// Request is one wal-push or wal-fetch, as parsed by the client, or a
// CommandCheck.
type Request struct {
	Version     int
	Fingerprint string
	Command     string
	Positionals []string
	Options     map[string]string
	Flags       map[string]bool
	Cwd         string
	Pid         int
	Prog        string
	GlobalArgs  []string
	Terse       bool
	Log         *LogShape // the client's logging (log.go)

	// Receive: the client writes the fetched file itself from data
	// frames; the agent does not touch the destination.
	Receive bool

	// Files: the client also takes the fetched file as an open file
	// descriptor (FrameFile), which it links or copies in the kernel.
	Files bool
}

// CommandCheck asks the agent to run `walden check`'s store and data
// directory checks itself, inside its service sandbox; stdout carries the
// JSON report. Options["timeout"] is the limit per part in seconds.
const CommandCheck = "check-service"

// FrameData carries the bytes of the fetched file to a client that asked
// to write it itself (Request.Receive). The agent then never needs write
// access to the client's directory, which its service sandbox usually
// does not give it (ProtectSystem=strict, PGDATA outside its paths).
const FrameData = 'D'

// FrameReset tells the client to discard the data received so far: the
// agent found its cached copy bad while sending it and sends the file
// again from the store.
const FrameReset = 'Z'

// FrameFile hands the client an open descriptor of the fetched file
// (SCM_RIGHTS, attached to the frame's bytes); the payload is the file's
// size, a big-endian uint64. The client links the file into place, or
// copies it in the kernel, instead of receiving its bytes through the
// socket: a cached segment then costs what cp costs. Like data frames,
// it is kept only if the exit status is 0, and a reset frame discards it.
const FrameFile = 'F'

// WriteFrame writes one frame with one write.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	// One write per frame keeps frames whole when writers share the conn.
	buf := make([]byte, 0, len(hdr)+len(payload))
	buf = append(append(buf, hdr[:]...), payload...)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame.
func ReadFrame(r io.Reader) (byte, []byte, error) { return ReadFrameInto(r, nil) }

// ReadFrameInto is ReadFrame reusing buf for frames that fit: the file's
// bytes come in frames of the agent's 1 MiB buffer.
func ReadFrameInto(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("fast path: frame of %d bytes is too large", n)
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
