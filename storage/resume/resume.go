// Package resume is the download side the cloud backends share: a reader
// that survives broken and stalled connections by re-requesting the rest
// of an object from the offset reached, and the options that tune it.
// Backends supply only how to open an object at an offset (and how to pin
// that to the version first read); attempt counting, backoff, the stall
// watchdog and short-body detection live here.
package resume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

const (
	// DefaultMaxBackoff caps the backoff between attempts.
	DefaultMaxBackoff = 20 * time.Second
	// DefaultStallTimeout is how long a download may receive nothing.
	DefaultStallTimeout = 2 * time.Minute
	// ForeverAttempts stands in for WALE_RETRIES < 1 ("retry forever"):
	// with the 20 s backoff cap it is several hours of trying.
	ForeverAttempts = 1000
)

// Attempts turns WALE_RETRIES into an attempt count per request.
func Attempts(retries int) int {
	if retries < 1 {
		return ForeverAttempts
	}
	return retries
}

// Options are the waits a backend's retries and downloads use.
type Options struct {
	MaxBackoff   time.Duration // cap of the exponential backoff between attempts
	StallTimeout time.Duration // a download receiving nothing this long is re-requested
	// Request bounds (deadline.Limits; its Stall is StallTimeout).
	Response time.Duration // answer wait of a request, beyond PerMiB per MiB of its body
	PerMiB   time.Duration
	Idle     time.Duration // an operation without progress this long fails
}

// WithRequestLimits sets how long a request may wait for its answer
// (response, plus perMiB for each MiB it sends) and how long a whole
// operation may go without progress (defaults 60 s, 8 s, 10 min).
func WithRequestLimits(response, perMiB, idle time.Duration) Option {
	return func(o *Options) { o.Response, o.PerMiB, o.Idle = response, perMiB, idle }
}

// Option adjusts a store's Options; tests use it to shorten waits.
type Option func(*Options)

// WithBackoff caps the exponential backoff between attempts (default 20 s).
func WithBackoff(max time.Duration) Option { return func(o *Options) { o.MaxBackoff = max } }

// WithStallTimeout sets how long a download may receive nothing before the
// connection is given up and the rest re-requested (default 2 min). There
// is no overall timeout: large objects take as long as they take.
func WithStallTimeout(d time.Duration) Option { return func(o *Options) { o.StallTimeout = d } }

// NewOptions applies opts to the defaults.
func NewOptions(opts ...Option) Options {
	o := Options{MaxBackoff: DefaultMaxBackoff, StallTimeout: DefaultStallTimeout,
		Response: 60 * time.Second, PerMiB: 8 * time.Second, Idle: 10 * time.Minute}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// ProgressFloor is what a connection must deliver before it breaks for the
// break not to count against the attempts: a server that cuts every
// response after a few bytes is failing, not slowly succeeding.
const ProgressFloor = 1 << 20

// GaveUp marks a download that broke more often than the attempt count.
type GaveUp struct {
	Attempts int
	Err      error
}

func (g *GaveUp) Error() string {
	return fmt.Sprintf("giving up after %d attempts: %v", g.Attempts, g.Err)
}
func (g *GaveUp) Unwrap() error { return g.Err }

// ErrStalled replaces the context error of a body the watchdog gave up on.
var ErrStalled = errors.New("connection stalled")

// ErrClosed is what Read reports (through Config.Fail) after Close.
var ErrClosed = errors.New("read after close")

// Opener requests the object from offset on. ctx belongs to this request
// alone: cancelling it must abort the body. size is the object's total
// length (-1 when unknown); it is used only from the request at offset 0.
// A resumed request must return the same version of the object as the
// first one, or fail.
type Opener func(ctx context.Context, offset int64) (body io.ReadCloser, size int64, err error)

// Config describes one download.
type Config struct {
	Open Opener
	// Attempts bounds the connections that break having delivered less
	// than ProgressFloor: that many in a row end the download.
	Attempts int
	Options  Options
	// Fail turns the error that ends the download (a GaveUp, a context
	// error, a failed re-request, ErrClosed) into the backend's one-line
	// error; Read returns it from then on.
	Fail func(error) error
}

// Reader reads an object and, when the connection breaks or stalls
// mid-body, re-requests the rest from the offset reached.
type Reader struct {
	ctx context.Context
	c   Config

	size int64 // total length, -1 when the server did not say
	off  int64 // bytes delivered so far

	body    io.ReadCloser
	cancel  context.CancelFunc // cancels the current request only
	watch   *time.Timer        // fires when one Read waits longer than the stall timeout
	stalled *atomic.Bool

	fails int
	got   int64 // bytes delivered by the current connection
	err   error // sticky
}

// Open issues the first request. Its error is returned as the Opener gave
// it (not through Fail), so the caller can tell a missing object apart.
func Open(ctx context.Context, c Config) (*Reader, error) {
	r := &Reader{ctx: ctx, c: c, size: -1}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reader) open() error {
	rctx, cancel := context.WithCancel(r.ctx)
	body, size, err := r.c.Open(rctx, r.off)
	if err != nil {
		cancel()
		return err
	}
	if r.off == 0 {
		r.size = size
	}
	stalled := new(atomic.Bool)
	r.body, r.cancel, r.stalled, r.got = body, cancel, stalled, 0
	r.watch = time.AfterFunc(time.Hour, func() {
		stalled.Store(true)
		cancel()
	})
	r.watch.Stop()
	return nil
}

func (r *Reader) closeBody() {
	if r.body == nil {
		return
	}
	r.watch.Stop()
	r.cancel()
	r.body.Close()
	r.body = nil
}

func (r *Reader) Read(p []byte) (int, error) {
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
		r.watch.Reset(r.c.Options.StallTimeout)
		n, err := r.body.Read(p)
		r.watch.Stop()
		r.off += int64(n)
		r.got += int64(n)
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
			err = fmt.Errorf("%w: nothing received for %s", ErrStalled, r.c.Options.StallTimeout)
		}
		// The connection broke: drop it and re-request the rest. Only a
		// connection that delivered ProgressFloor earns a fresh budget.
		if r.got >= ProgressFloor {
			r.fails = 0
		}
		r.closeBody()
		r.fails++
		if r.fails >= r.c.Attempts {
			return n, r.stop(&GaveUp{Attempts: r.fails, Err: fmt.Errorf("reading the body at offset %d: %w", r.off, err)})
		}
		if n > 0 {
			return n, nil
		}
	}
}

// pause waits before a re-request: exponential from 100 ms, capped at the
// maximum backoff, with full jitter.
func (r *Reader) pause() error {
	d := min(100*time.Millisecond<<min(r.fails-1, 10), r.c.Options.MaxBackoff)
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

func (r *Reader) stop(err error) error {
	r.closeBody()
	r.err = r.c.Fail(err)
	return r.err
}

// Close releases the connection; reading after Close fails.
func (r *Reader) Close() error {
	r.closeBody()
	if r.err == nil {
		r.err = r.c.Fail(ErrClosed)
	}
	return nil
}
