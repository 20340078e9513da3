package fastpath

import (
	"context"
	"fmt"
	"io"

	"github.com/walden-pg/walden/agent/fastpath/internal/wire"
)

// Do sends req to the agent on the socket at path and copies the command's
// output to stdout and stderr as it arrives. It returns the command's exit
// status, or an error wrapping ErrUnavailable or ErrRefused (or a broken
// connection) when the caller must do the work itself.
func Do(ctx context.Context, path string, req *Request, stdout, stderr io.Writer) (int, error) {
	c, stop, err := dial(ctx, path)
	if err != nil {
		return 0, err
	}
	defer stop()
	return exchange(ctx, c, c, nil, req, stdout, stderr, nil)
}

// exchange sends req on c, then reads the answer from r (c itself, or a
// reader of c that also takes descriptors) into buf (nil: a new buffer
// per frame), copying the command's output to stdout and stderr, until
// the exit frame, whose status it returns. Frames other than output,
// refusal and exit go to other (nil when none are expected), whose error
// ends the exchange.
func exchange(ctx context.Context, c *conn, r io.Reader, buf []byte, req *Request, stdout, stderr io.Writer, other func(typ byte, p []byte) error) (int, error) {
	req.Version = Version
	if err := wire.WriteFrame(c, wire.FrameRequest, wire.AppendRequest(nil, req)); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	for {
		typ, p, err := wire.ReadFrameInto(r, buf)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("fastpath: connection to the agent broke: %v", err)
		}
		switch typ {
		case wire.FrameStdout:
			stdout.Write(p)
		case wire.FrameStderr:
			stderr.Write(p)
		case wire.FrameRefuse:
			return 0, fmt.Errorf("%w: %s", ErrRefused, p)
		case wire.FrameExit:
			st, err := wire.ParseExit(p)
			if err != nil {
				return 0, fmt.Errorf("fastpath: bad exit frame: %v", err)
			}
			return st, nil
		default:
			if other == nil {
				return 0, fmt.Errorf("fastpath: unknown frame %q", typ)
			}
			if err := other(typ, p); err != nil {
				return 0, err
			}
		}
	}
}
