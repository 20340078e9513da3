// Package faketest holds what the cloud backends' tests share: a
// recording, fault-injecting HTTP handler to put in front of a fake
// service, the faults themselves, and data helpers. Only tests import it.
package faketest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walden-pg/walden/storage"
)

// Seen is one request as it arrived.
type Seen struct {
	Method string
	Path   string // r.URL.Path
	Query  url.Values
	Header http.Header
}

// Hook may answer a request itself (returning true) or leave it to next,
// the fake service.
type Hook func(w http.ResponseWriter, r *http.Request, next http.Handler) bool

// Recorder records every request and passes it through the current hook.
type Recorder struct {
	Received atomic.Int64 // request body bytes that reached the fake

	mu   sync.Mutex
	seen []Seen
	hook Hook
}

// Handler wraps the fake service.
func (rec *Recorder) Handler(fake http.Handler) http.Handler {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = countingBody{r.Body, &rec.Received}
		}
		fake.ServeHTTP(w, r)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, Seen{r.Method, r.URL.Path, r.URL.Query(), r.Header.Clone()})
		hook := rec.hook
		rec.mu.Unlock()
		if hook != nil && hook(w, r, next) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SetHook replaces the hook; nil lets every request through.
func (rec *Recorder) SetHook(h Hook) {
	rec.mu.Lock()
	rec.hook = h
	rec.mu.Unlock()
}

// Requests returns the requests seen so far that match.
func (rec *Recorder) Requests(match func(Seen) bool) []Seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []Seen
	for _, s := range rec.seen {
		if match(s) {
			out = append(out, s)
		}
	}
	return out
}

// Count is the number of requests seen so far.
func (rec *Recorder) Count() int { return len(rec.Requests(func(Seen) bool { return true })) }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Fault answers a request in place of (or around) the fake.
type Fault func(w http.ResponseWriter, r *http.Request, next http.Handler)

// FailFirst applies fault to the first n requests that match.
func FailFirst(n int64, match func(*http.Request) bool, fault Fault) Hook {
	var count atomic.Int64
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !match(r) || count.Add(1) > n {
			return false
		}
		fault(w, r, next)
		return true
	}
}

// HijackClose closes the connection without an answer.
func HijackClose(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// DropMidUpload takes half the request body, then closes the connection
// without an answer; nothing reaches the fake.
func DropMidUpload(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	io.CopyN(io.Discard, r.Body, max(r.ContentLength/2, 1))
	HijackClose(w)
}

// CutAt serves the request but closes the connection after limit bytes of
// the response body.
func CutAt(limit func(r *http.Request) int64) Fault {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(&CutWriter{ResponseWriter: w, Left: limit(r)}, r)
	}
}

// StallAt serves the request but stops sending after limit bytes of the
// response body, without closing the connection.
func StallAt(limit int64) Fault {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(&CutWriter{ResponseWriter: w, Left: limit, Stall: true, Ctx: r.Context()}, r)
	}
}

// CutWriter passes Left bytes of the body, then cuts the connection (with
// Reset, by a TCP reset; with Stall, it blocks until Ctx ends or 10 s pass).
type CutWriter struct {
	http.ResponseWriter
	Left  int64
	Stall bool
	Reset bool
	Ctx   context.Context
	cut   bool
}

func (c *CutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *CutWriter) Write(p []byte) (int, error) {
	if c.cut {
		return 0, errors.New("connection cut")
	}
	if int64(len(p)) <= c.Left {
		c.Left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	n, _ := c.ResponseWriter.Write(p[:c.Left])
	c.cut = true
	http.NewResponseController(c.ResponseWriter).Flush()
	if c.Stall {
		select {
		case <-c.Ctx.Done():
		case <-time.After(10 * time.Second):
		}
	} else if c.Reset {
		ResetConn(c.ResponseWriter)
	} else {
		HijackClose(c.ResponseWriter)
	}
	return n, errors.New("connection cut")
}

// RandomBytes returns n reproducible pseudo-random bytes.
func RandomBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// GenReader yields Left pseudo-random bytes, copies them to Sum, and
// records how far it ran ahead of what the fake had Received.
type GenReader struct {
	Rng      *rand.ChaCha8
	Left     int64
	Received *atomic.Int64
	Sum      io.Writer
	MaxLag   int64
	produced int64
}

func (g *GenReader) Read(p []byte) (int, error) {
	if g.Left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.Left {
		p = p[:g.Left]
	}
	g.Rng.Read(p)
	g.Left -= int64(len(p))
	g.produced += int64(len(p))
	g.Sum.Write(p)
	if lag := g.produced - g.Received.Load(); lag > g.MaxLag {
		g.MaxLag = lag
	}
	return len(p), nil
}

// ReaderFunc is a Reader made of a function.
type ReaderFunc func([]byte) (int, error)

func (f ReaderFunc) Read(p []byte) (int, error) { return f(p) }

// CountingListener accepts and counts connections (closing each at once).
func CountingListener(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), &n
}

// ReadAll reads the whole object.
func ReadAll(t *testing.T, s storage.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return b
}

// Put stores data under key. The source is a plain stream (not seekable),
// so backends that could read a seekable one in place buffer it instead.
func Put(t *testing.T, s storage.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewBuffer(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// RoundTrip puts a few objects of a WAL-E layout into s, calls stored (for
// the backend's checks of physical names), then reads, heads, lists and
// deletes them.
func RoundTrip(t *testing.T, s storage.Store, stored func()) {
	t.Helper()
	ctx := context.Background()
	objs := map[string][]byte{
		"wal_005/000000010000000000000002.lzo":                                             RandomBytes(1, 300<<10),
		"wal_005/000000010000000000000001.lzo":                                             RandomBytes(2, 1000),
		"basebackups_005/base_000000010000000000000002_00000040_backup_stop_sentinel.json": []byte(`{"x":1}`),
		"wal_005/empty": {},
	}
	for k, v := range objs {
		Put(t, s, k, v)
	}
	stored()
	for k, v := range objs {
		if got := ReadAll(t, s, k); !bytes.Equal(got, v) {
			t.Errorf("%s: got %d bytes, want %d", k, len(got), len(v))
		}
		o, err := s.Head(ctx, k)
		if err != nil || o.Key != k || o.Size != int64(len(v)) || o.Modified.IsZero() {
			t.Errorf("head %s = %+v, %v", k, o, err)
		}
	}
	list, err := s.List(ctx, "wal_005/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range list {
		keys = append(keys, o.Key)
		if o.Size != int64(len(objs[o.Key])) || o.Modified.IsZero() {
			t.Errorf("listed %+v, want size %d and a modification time", o, len(objs[o.Key]))
		}
	}
	want := []string{"wal_005/000000010000000000000001.lzo", "wal_005/000000010000000000000002.lzo", "wal_005/empty"}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Errorf("list = %v, want %v", keys, want)
	}
	if all, _ := s.List(ctx, ""); len(all) != 4 {
		t.Errorf("list of everything = %d objects, want 4", len(all))
	}
	if err := s.Delete(ctx, "wal_005/empty"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(ctx, "wal_005/empty"); !storage.IsNotFound(err) {
		t.Errorf("head after delete: %v", err)
	}
	if err := s.Delete(ctx, "wal_005/empty"); err != nil {
		t.Errorf("deleting a missing object: %v", err)
	}
}

// ReadBack reads the whole object and reports an error unless it is want.
func ReadBack(ctx context.Context, s storage.Store, key string, want []byte) error {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err == nil && !bytes.Equal(b, want) {
		err = errors.New("content differs")
	}
	return err
}

// AssertMissing checks that Get and Head of key answer storage.ErrNotFound.
func AssertMissing(t *testing.T, s storage.Store, key string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("get %s: %v", key, err)
	}
	if _, err := s.Head(ctx, key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("head %s: %v", key, err)
	}
}

// hangLimit ends a hung handler should the client never give up, so that
// a broken test fails instead of blocking forever.
const hangLimit = 30 * time.Second

func waitGone(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(hangLimit):
	}
}

// ResetConn aborts the connection with a TCP reset (not an orderly close).
func ResetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// ResetBeforeHeaders resets the connection before the request body is
// read and before any answer.
func ResetBeforeHeaders(w http.ResponseWriter, r *http.Request, _ http.Handler) { ResetConn(w) }

// ResetMidUpload reads half the request body, then resets the connection.
func ResetMidUpload(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	io.CopyN(io.Discard, r.Body, max(r.ContentLength/2, 1))
	ResetConn(w)
}

// ResetAfterHeaders lets the fake answer, but resets the connection right
// after the response headers, before any of the response body.
func ResetAfterHeaders(w http.ResponseWriter, r *http.Request, next http.Handler) {
	next.ServeHTTP(&CutWriter{ResponseWriter: w, Left: 0, Reset: true}, r)
}

// HangAfterRequest reads the whole request and never answers.
func HangAfterRequest(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	io.Copy(io.Discard, r.Body)
	waitGone(r)
}

// StopReading reads limit bytes of the request body, then neither reads
// on nor answers for hold: the client's upload stalls once the socket
// buffers fill. (A server not reading cannot see the client leave.)
func StopReading(limit int64, hold time.Duration) Fault {
	return func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		io.CopyN(io.Discard, r.Body, limit)
		time.Sleep(hold)
		ResetConn(w)
	}
}

// HeadersOnly answers 200 with the length the fake would give, then sends
// no body and holds the connection open.
func HeadersOnly(w http.ResponseWriter, r *http.Request, next http.Handler) {
	next.ServeHTTP(&CutWriter{ResponseWriter: w, Left: 0, Stall: true, Ctx: r.Context()}, r)
}

// CheckMissingBucket runs list, get, head, a small put and a put of
// bigSize bytes of unknown length (the backend's multipart or chunked path)
// against s, whose bucket does not exist: each must fail with one line
// naming the bucket, never as a missing object.
func CheckMissingBucket(t *testing.T, s storage.Store, bucket string, bigSize int) {
	t.Helper()
	ctx := context.Background()
	ops := map[string]func() error{
		"list": func() error { _, err := s.List(ctx, "basebackups_005/"); return err },
		"get":  func() error { _, err := s.Get(ctx, "wal_005/x"); return err },
		"head": func() error { _, err := s.Head(ctx, "wal_005/x"); return err },
		"put":  func() error { return s.Put(ctx, "wal_005/x", bytes.NewReader([]byte("x")), 1, storage.PutOptions{}) },
		"put large": func() error {
			return s.Put(ctx, "wal_005/x", bytes.NewReader(RandomBytes(1, bigSize)), -1, storage.PutOptions{})
		},
	}
	for name, op := range ops {
		err := op()
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("bucket %q does not exist", bucket)) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", name, err)
		}
		if storage.IsNotFound(err) {
			t.Errorf("%s: a missing bucket reads as a missing object: %v", name, err)
		}
	}
}
