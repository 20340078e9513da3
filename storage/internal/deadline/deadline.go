// Package deadline bounds the cloud backends' HTTP requests and
// operations, so that a server that stops answering is a reported error
// instead of a hang:
//
//   - a request must be sent and answered (response headers) within
//     Response plus PerMiB for every MiB of its body;
//   - once its body is sent, its response headers must come within
//     Response;
//   - an upload body the connection stops taking, and a response body
//     that stops coming, fail after Stall without a byte moving;
//   - an operation (all its requests and retries) fails after Idle
//     without progress: an answer other than 5xx or 429, or response
//     body bytes. (Sending is not progress: a server that takes every
//     upload and never answers is not making any.)
//
// Each of these ends with a *HangError, which the backends retry like any
// transient error and report as such.
package deadline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Defaults. A request may take 60 s beyond 8 s per MiB of body: 16 MiB
// (a GCS chunk or an S3 part) gets 188 s, enough at 1 Mbit/s upstream.
// A body that moves nothing for 2 min is given up, as downloads always
// were. An operation that makes no progress for 10 min ends, whatever
// WALE_RETRIES allows.
const (
	DefaultResponse = 60 * time.Second
	DefaultPerMiB   = 8 * time.Second
	DefaultStall    = 2 * time.Minute
	DefaultIdle     = 10 * time.Minute
)

// Limits are the bounds a Transport and Operation apply.
type Limits struct {
	Response time.Duration
	PerMiB   time.Duration
	Stall    time.Duration
	Idle     time.Duration
}

// DefaultLimits returns the defaults above.
func DefaultLimits() Limits {
	return Limits{Response: DefaultResponse, PerMiB: DefaultPerMiB, Stall: DefaultStall, Idle: DefaultIdle}
}

// HangError reports a server that stopped answering.
type HangError struct {
	What string        // "no response from HOST", "no data from HOST", ...
	For  time.Duration // how long it was waited for
}

func (e *HangError) Error() string { return fmt.Sprintf("%s within %s", e.What, e.For) }

// Timeout and Temporary make a hang retryable wherever a network timeout is.
func (e *HangError) Timeout() bool   { return true }
func (e *HangError) Temporary() bool { return true }

// IsHang reports whether err is (or wraps) a *HangError.
func IsHang(err error) bool {
	var h *HangError
	return errors.As(err, &h)
}

// Transport applies the per-request bounds around Base.
type Transport struct {
	Base   http.RoundTripper
	Limits Limits
	// Opaque marks requests whose response-body errors must reach the
	// caller as plain errors that no library retry recognises (downloads:
	// the resume reader, not the library, re-requests them and counts the
	// attempts).
	Opaque func(*http.Request) bool
}

// RoundTrip sends req under the request deadline and watches its bodies.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	l := t.Limits
	host := req.URL.Host
	opaque := t.Opaque != nil && t.Opaque(req)
	g, _ := req.Context().Value(guardKey{}).(*guard)
	if opaque && g != nil {
		if msg := g.brokenMsg(); msg != "" {
			// The library re-requesting a broken body on its own.
			return nil, &BodyError{msg: msg}
		}
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	progress := progressOf(req.Context())
	allow := l.Response
	if req.ContentLength > 0 {
		allow += time.Duration((req.ContentLength+(1<<20)-1)>>20) * l.PerMiB
	}
	w := &watch{cancel: cancel, limit: allow}
	w.request = time.AfterFunc(allow, func() {
		w.mu.Lock()
		limit := w.limit
		w.mu.Unlock()
		cancel(&HangError{What: fmt.Sprintf("no response from %s", host), For: limit})
	})
	out := req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		b := &sendBody{rc: req.Body, w: w, l: l, host: host}
		out.Body = b
		if req.GetBody != nil {
			// The transport may rewind the body itself.
			get := req.GetBody
			out.GetBody = func() (io.ReadCloser, error) {
				rc, err := get()
				if err != nil {
					return nil, err
				}
				return &sendBody{rc: rc, w: w, l: l, host: host}, nil
			}
		}
	}
	resp, err := t.Base.RoundTrip(out)
	w.stopRequest()
	if err != nil {
		cancel(nil)
		if h := hangOf(ctx); h != nil {
			return nil, h
		}
		return nil, err
	}
	if resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
		progress()
	}
	resp.Body = &recvBody{rc: resp.Body, ctx: ctx, cancel: cancel, l: l, host: host,
		opaque: opaque, progress: progress, guard: g}
	return resp, nil
}

func hangOf(ctx context.Context) *HangError {
	var h *HangError
	if errors.As(context.Cause(ctx), &h) {
		return h
	}
	return nil
}

// watch holds a request's timers.
type watch struct {
	mu      sync.Mutex
	cancel  context.CancelCauseFunc
	request *time.Timer
	stall   *time.Timer
	limit   time.Duration // the request timer's current limit
	done    bool
}

func (w *watch) stopRequest() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.request.Stop()
	if w.stall != nil {
		w.stall.Stop()
	}
}

// sendBody is a request body: between the transport's Reads the
// connection is writing, and that must not stall; once the body is sent
// the response must come within Response.
type sendBody struct {
	rc   io.ReadCloser
	w    *watch
	l    Limits
	host string
}

func (b *sendBody) Read(p []byte) (int, error) {
	b.w.mu.Lock()
	if b.w.stall != nil {
		b.w.stall.Stop() // reading our source is not the connection's stall
	}
	b.w.mu.Unlock()
	n, err := b.rc.Read(p)
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	if b.w.done {
		return n, err
	}
	if err == io.EOF {
		// Sent: from now on the answer is waited for.
		b.w.limit = b.l.Response
		b.w.request.Reset(b.l.Response)
		return n, err
	}
	if b.w.stall == nil {
		stall := b.l.Stall
		b.w.stall = time.AfterFunc(stall, func() {
			b.w.cancel(&HangError{What: fmt.Sprintf("upload to %s stalled: nothing sent", b.host), For: stall})
		})
	} else {
		b.w.stall.Reset(b.l.Stall)
	}
	return n, err
}

func (b *sendBody) Close() error { return b.rc.Close() }

// recvBody is a response body that fails when nothing arrives for Stall
// while it is being read (time between the caller's Reads is the
// caller's own).
type recvBody struct {
	rc       io.ReadCloser
	ctx      context.Context
	cancel   context.CancelCauseFunc
	l        Limits
	host     string
	opaque   bool
	progress func()
	timer    *time.Timer
	guard    *guard
}

func (b *recvBody) Read(p []byte) (int, error) {
	if b.timer == nil {
		stall := b.l.Stall
		b.timer = time.AfterFunc(stall, func() {
			b.cancel(&HangError{What: fmt.Sprintf("no data from %s", b.host), For: stall})
		})
	} else {
		b.timer.Reset(b.l.Stall)
	}
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if n > 0 {
		b.progress()
	}
	if err == nil || err == io.EOF {
		return n, err
	}
	if h := hangOf(b.ctx); h != nil {
		err = h
	}
	if b.opaque {
		if b.guard != nil {
			b.guard.broke(err.Error())
		}
		err = &BodyError{msg: err.Error(), hang: IsHang(err)}
	}
	return n, err
}

func (b *recvBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// BodyError is a broken download body, deliberately without Unwrap: the
// GCS library would otherwise re-request the rest itself, without limit.
type BodyError struct {
	msg  string
	hang bool
}

func (e *BodyError) Error() string { return "connection broken: " + e.msg }

// Hang reports whether the body stopped coming (rather than broke).
func (e *BodyError) Hang() bool { return e.hang }

type progressKey struct{}

type opWatch struct {
	mu    sync.Mutex
	timer *time.Timer
	idle  time.Duration
}

// Operation bounds everything done with the returned context: it is
// cancelled with a *HangError when no request made progress (bytes sent
// or received, a response) for idle. stop releases the timer.
func Operation(ctx context.Context, idle time.Duration) (context.Context, func()) {
	if idle <= 0 {
		return ctx, func() {}
	}
	octx, cancel := context.WithCancelCause(ctx)
	o := &opWatch{idle: idle}
	o.timer = time.AfterFunc(idle, func() {
		cancel(&HangError{What: "no progress", For: idle})
	})
	octx = context.WithValue(octx, progressKey{}, o)
	return octx, func() {
		o.timer.Stop()
		cancel(nil)
	}
}

// Progress postpones ctx's operation bound.
func Progress(ctx context.Context) { progressOf(ctx)() }

func progressOf(ctx context.Context) func() {
	o, _ := ctx.Value(progressKey{}).(*opWatch)
	if o == nil {
		return func() {}
	}
	return func() {
		o.mu.Lock()
		o.timer.Reset(o.idle)
		o.mu.Unlock()
	}
}

// Cause returns the *HangError that ended ctx, or nil.
func Cause(ctx context.Context) *HangError { return hangOf(ctx) }

type guardKey struct{}

type guard struct {
	mu  sync.Mutex
	msg string
}

func (g *guard) broke(msg string) {
	g.mu.Lock()
	if g.msg == "" {
		g.msg = msg
	}
	g.mu.Unlock()
}

func (g *guard) brokenMsg() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.msg
}

// OneDownload marks ctx for one download request: once its body breaks,
// further download requests made with ctx fail at once with a *BodyError.
// A library that re-requests broken bodies on its own, without limit,
// thereby hands the failure back to the caller, who counts attempts.
func OneDownload(ctx context.Context) context.Context {
	return context.WithValue(ctx, guardKey{}, &guard{})
}
