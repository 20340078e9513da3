package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// errStalled replaces the context error of a body the watchdog gave up on.
var errStalled = errors.New("connection stalled")

// resumeReader reads an object and, when the connection breaks or stalls
// mid-body, asks for the rest with "Range: bytes=<offset>-" and If-Match on
// the first response's ETag, so a replaced object is never spliced in.
// attempts consecutive failures without progress end the download.
type resumeReader struct {
	s    *Store
	ctx  context.Context
	key  string
	phys string

	etag string
	size int64 // total length, -1 when the server did not say
	off  int64 // bytes delivered so far

	body    io.ReadCloser
	cancel  context.CancelFunc // cancels the current request only
	watch   *time.Timer        // fires when one Read waits longer than s.stall
	stalled *atomic.Bool

	fails int
	err   error // sticky
}

// open issues the GetObject for everything from r.off on.
func (r *resumeReader) open() error {
	rctx, cancel := context.WithCancel(r.ctx)
	in := &s3.GetObjectInput{Bucket: aws.String(r.s.bucket), Key: aws.String(r.phys)}
	if r.off > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", r.off))
		if r.etag != "" {
			in.IfMatch = aws.String(r.etag)
		}
	}
	out, err := r.s.client.GetObject(rctx, in)
	if err != nil {
		cancel()
		return err
	}
	if r.off == 0 {
		r.etag = aws.ToString(out.ETag)
		if out.ContentLength != nil {
			r.size = *out.ContentLength
		}
	} else if !strings.HasPrefix(aws.ToString(out.ContentRange), fmt.Sprintf("bytes %d-", r.off)) {
		// A server that ignored Range would splice the start in again.
		out.Body.Close()
		cancel()
		return fmt.Errorf("resuming at offset %d: the server answered Content-Range %q", r.off, aws.ToString(out.ContentRange))
	}
	stalled := new(atomic.Bool)
	r.body, r.cancel, r.stalled = out.Body, cancel, stalled
	r.watch = time.AfterFunc(time.Hour, func() {
		stalled.Store(true)
		cancel()
	})
	r.watch.Stop()
	return nil
}

func (r *resumeReader) closeBody() {
	if r.body == nil {
		return
	}
	r.watch.Stop()
	r.cancel()
	r.body.Close()
	r.body = nil
}

func (r *resumeReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if r.body == nil {
			if err := r.pause(); err != nil {
				return 0, r.stop(err)
			}
			if err := r.open(); err != nil {
				return 0, r.stop(err)
			}
		}
		r.watch.Reset(r.s.stall)
		n, err := r.body.Read(p)
		r.watch.Stop()
		r.off += int64(n)
		if n > 0 {
			r.fails = 0
		}
		if err == nil {
			return n, nil
		}
		if err == io.EOF {
			if r.size < 0 || r.off >= r.size {
				r.err = io.EOF
				return n, io.EOF
			}
			err = io.ErrUnexpectedEOF
		}
		if r.ctx.Err() != nil {
			return n, r.stop(r.ctx.Err())
		}
		if r.stalled.Load() {
			err = fmt.Errorf("%w: nothing received for %s", errStalled, r.s.stall)
		}
		// The connection broke: drop it and re-request the rest.
		r.closeBody()
		r.fails++
		if r.fails >= r.s.attempts {
			return n, r.stop(&gaveUp{attempts: r.fails, err: fmt.Errorf("reading the body at offset %d: %w", r.off, err)})
		}
		if n > 0 {
			return n, nil
		}
	}
}

// pause waits before a re-request: exponential from 100 ms, capped at the
// store's maximum backoff, with full jitter.
func (r *resumeReader) pause() error {
	d := 100 * time.Millisecond << min(r.fails-1, 10)
	d = min(d, r.s.maxBackoff)
	if d <= 0 {
		return r.ctx.Err()
	}
	t := time.NewTimer(time.Duration(rand.Int64N(int64(d)) + 1))
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return r.ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *resumeReader) stop(err error) error {
	r.closeBody()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		r.err = &opError{msg: fmt.Sprintf("s3 get %s: %v", r.key, err), err: err}
	} else {
		r.err = r.s.fail("get", r.key, err)
	}
	return r.err
}

// Close releases the connection; reading after Close fails.
func (r *resumeReader) Close() error {
	r.closeBody()
	if r.err == nil {
		r.err = errors.New("s3 get " + r.key + ": read after close")
	}
	return nil
}
