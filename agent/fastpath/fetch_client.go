package fastpath

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Fetch hands a wal-fetch to the agent on the socket at path and writes
// the file the agent sends to dest itself: a temporary name in dest's
// directory, renamed onto dest only once the agent reports
// success, so that nothing is left at dest otherwise. The command's log
// lines are copied to stdout and stderr as they arrive.
//
// It returns the command's exit status, or an error wrapping
// ErrUnavailable or ErrRefused (or a broken connection) when the caller
// must do the work itself. It imports nothing heavy: a small front
// program can call it without the rest of walden.
func Fetch(ctx context.Context, path string, req *Request, dest string, stdout, stderr io.Writer) (int, error) {
	c, stop, err := dial(ctx, path)
	if err != nil {
		return 0, err
	}
	defer stop()

	// Before asking: an unwritable directory is then reported by the
	// caller's own run, in its words, with nothing logged by the agent.
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".walden-fetch-*")
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	kept := false
	defer func() {
		if !kept {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	req.Version = Version
	req.Receive = true
	if err := writeJSON(c, frameRequest, req); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	got := false
	var werr error
	buf := make([]byte, 1<<20)
	for {
		typ, p, err := readFrameInto(c, buf)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("fastpath: connection to the agent broke: %v", err)
		}
		switch typ {
		case frameStdout:
			stdout.Write(p)
		case frameStderr:
			stderr.Write(p)
		case frameData:
			got = true
			if werr == nil {
				_, werr = tmp.Write(p)
			}
		case frameReset:
			got = false
			if werr == nil {
				if werr = tmp.Truncate(0); werr == nil {
					_, werr = tmp.Seek(0, io.SeekStart)
				}
			}
		case frameRefuse:
			return 0, fmt.Errorf("%w: %s", ErrRefused, p)
		case frameExit:
			var m exitMsg
			if err := json.Unmarshal(p, &m); err != nil {
				return 0, fmt.Errorf("fastpath: bad exit frame: %v", err)
			}
			if m.Status != 0 || !got {
				// Failed, or an agent that wrote dest itself.
				return m.Status, nil
			}
			// Not synced, as a standalone wal-fetch (and WAL-E, and cp)
			// does not: PostgreSQL reads the file at once, fetches it
			// again after a crash, and makes durable (durable_rename)
			// what it keeps. A sync here costs more than the fetch.
			if err := tmp.Close(); werr == nil {
				werr = err
			}
			if werr == nil {
				werr = os.Rename(tmp.Name(), dest)
			}
			if werr != nil {
				// The agent's bytes are lost; the caller's own run
				// fetches again and reports the failure in its words.
				return 0, fmt.Errorf("%w: writing %s: %v", ErrUnavailable, dest, werr)
			}
			kept = true
			return 0, nil
		default:
			return 0, fmt.Errorf("fastpath: unknown frame %q", typ)
		}
	}
}
