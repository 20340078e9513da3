// Package gcs stores objects in Google Cloud Storage, the backend of
// WALE_GS_PREFIX, through cloud.google.com/go/storage.
//
// Physical names follow WAL-E (wal-e-compat.md 3.1): WAL-E's GCS object
// names start with a slash, "/" + path_prefix + key, e.g.
// "/prod/db1/wal_005/X.lzo", or "/wal_005/X.lzo" with an empty path. Lists
// use "/" + path_prefix + prefix and return keys relative to path_prefix.
//
// Doubled slashes: WAL-E uploaded to the literal URL path of the raw prefix,
// so a prefix typed as gs://bucket//prod wrote objects named "//prod/...",
// yet listed "/prod/...". walden reads, lists and writes only the
// single-leading-slash form "/" + path_prefix + key (the form WAL-E listed);
// objects under such literal double-slash names are not seen.
//
// Uploads are resumable uploads in chunks of at most 16 MiB (bounded
// memory) that become visible only when the last chunk is committed; a
// failed upload is abandoned by cancelling its context, so nothing is
// committed.
package gcs

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gstorage "cloud.google.com/go/storage"
	gax "github.com/googleapis/gax-go/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/walden-pg/walden/storage"
)

const (
	// ChunkSize bounds an upload's buffer; smaller known-size objects get
	// a chunk just large enough for them.
	ChunkSize = 16 << 20
	minChunk  = 256 << 10 // the service's chunk granularity

	defaultMaxBackoff   = 20 * time.Second
	initialBackoff      = 500 * time.Millisecond
	defaultStallTimeout = 2 * time.Minute
	// foreverAttempts stands in for WALE_RETRIES < 1 ("retry forever").
	foreverAttempts = 1000
)

// Option adjusts a Store; tests use it to shorten waits.
type Option func(*options)

type options struct {
	maxBackoff time.Duration
	stall      time.Duration
}

// WithBackoff caps the exponential backoff between attempts (default 20 s).
func WithBackoff(max time.Duration) Option { return func(o *options) { o.maxBackoff = max } }

// WithStallTimeout sets how long a download may receive nothing before the
// connection is given up and the rest re-requested (default 2 min).
func WithStallTimeout(d time.Duration) Option { return func(o *options) { o.stall = d } }

var _ storage.Store = (*Store)(nil)

// Store is a GCS bucket and WAL-E path prefix.
type Store struct {
	bucket   string
	prefix   string // "/" + path_prefix
	attempts int
	backoff  gax.Backoff
	stall    time.Duration
	copts    []option.ClientOption

	mu     sync.Mutex
	client *gstorage.Client // created on first use unless New could do it offline
}

// New prepares a store for prefix p. credentialsFile is
// GOOGLE_APPLICATION_CREDENTIALS ("" = Application Default Credentials);
// with STORAGE_EMULATOR_HOST set the library talks to that emulator without
// authentication. retries is WALE_RETRIES, attempts per request; below 1
// means (practically) forever.
//
// New makes no network request. Reading a credentials file (or using the
// emulator) is local, so the client is created here and configuration
// errors surface early; Application Default Credentials may have to probe
// the GCE metadata server, so without a file the client is created on
// first use.
func New(ctx context.Context, p storage.Prefix, credentialsFile string, retries int, opts ...Option) (*Store, error) {
	o := options{maxBackoff: defaultMaxBackoff, stall: defaultStallTimeout}
	for _, f := range opts {
		f(&o)
	}
	if p.Store == "" {
		return nil, errors.New("gcs: the prefix names no bucket")
	}
	attempts := retries
	if attempts < 1 {
		attempts = foreverAttempts
	}
	s := &Store{
		bucket:   p.Store,
		prefix:   "/" + p.Path,
		attempts: attempts,
		backoff:  gax.Backoff{Initial: min(initialBackoff, o.maxBackoff), Max: o.maxBackoff, Multiplier: 2},
		stall:    o.stall,
	}
	if credentialsFile != "" {
		data, err := os.ReadFile(credentialsFile)
		if err != nil {
			return nil, fmt.Errorf("GOOGLE_APPLICATION_CREDENTIALS: %v", err)
		}
		var f struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(data, &f) != nil || f.Type == "" {
			return nil, fmt.Errorf("GOOGLE_APPLICATION_CREDENTIALS: %s is not a Google credentials JSON file", credentialsFile)
		}
		// The operator's own file: any credential type is acceptable.
		s.copts = append(s.copts, option.WithAuthCredentialsJSON(option.CredentialsType(f.Type), data))
	}
	if credentialsFile != "" || os.Getenv("STORAGE_EMULATOR_HOST") != "" {
		if _, err := s.bucketHandle(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close releases the client's connections.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		return nil
	}
	err := s.client.Close()
	s.client = nil
	return err
}

func (s *Store) bucketHandle(ctx context.Context) (*gstorage.BucketHandle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		// The client outlives the caller's context.
		c, err := gstorage.NewClient(context.WithoutCancel(ctx), s.copts...)
		if err != nil {
			return nil, fmt.Errorf("gcs: creating the client: %s", oneLine(err.Error()))
		}
		s.client = c
	}
	return s.client.Bucket(s.bucket), nil
}

func (s *Store) name(key string) string { return s.prefix + key }

// tries is one operation's retry budget. The library asks it after every
// failed attempt; it allows attempts-1 retries of transient errors. The
// resumable-upload path has no attempt limit of its own, so this is what
// bounds it (reset after every committed chunk).
type tries struct {
	max    int64
	failed atomic.Int64
}

func (t *tries) retry(err error) bool {
	if !gstorage.ShouldRetry(err) {
		return false
	}
	return t.failed.Add(1) < t.max
}

// object returns a handle with a retry configuration of its own: the
// budget is per operation. (Retryer merges into a handle's existing config
// in place, which is why the client itself is never given one.)
func (s *Store) object(ctx context.Context, key string) (*gstorage.ObjectHandle, *tries, error) {
	b, err := s.bucketHandle(ctx)
	if err != nil {
		return nil, nil, err
	}
	t := &tries{max: int64(s.attempts)}
	return b.Object(s.name(key)).Retryer(s.retryOptions(t)...), t, nil
}

func (s *Store) retryOptions(t *tries) []gstorage.RetryOption {
	return []gstorage.RetryOption{
		// Uploads carry no preconditions, yet retrying them is safe: an
		// object appears only when its upload completes.
		gstorage.WithPolicy(gstorage.RetryAlways),
		gstorage.WithBackoff(s.backoff),
		gstorage.WithMaxAttempts(s.attempts),
		gstorage.WithErrorFunc(t.retry),
	}
}

// chunkSize fits the upload buffer to a known small size.
func chunkSize(size int64) int {
	if size < 0 || size >= ChunkSize {
		return ChunkSize
	}
	// One byte of room so the whole object fits in the first chunk.
	return int((size + minChunk) / minChunk * minChunk)
}

// Put uploads r under key. size is r's length, or -1 when unknown.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) error {
	obj, t, err := s.object(ctx, key)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.NewWriter(wctx)
	w.ChunkSize = chunkSize(size)
	// Attempts, not time, end the retries of a chunk.
	w.ChunkRetryDeadline = time.Duration(s.attempts) * (s.backoff.Max + 2*time.Minute)
	w.ContentType = opts.ContentType
	if w.ContentType == "" {
		// The library would sniff the content otherwise; WAL-E's objects
		// are application/octet-stream (wal-e-compat.md 3.7).
		w.ContentType = "application/octet-stream"
	}
	w.ProgressFunc = func(int64) { t.failed.Store(0) }
	src := io.Reader(ctxReader{ctx, r})
	if size >= 0 {
		src = &exactReader{r: src, left: size, size: size}
	}
	src = sourceReader{src}
	if _, err := io.Copy(w, src); err != nil {
		// Abandon the resumable upload before its last chunk is sent.
		cancel()
		w.Close()
		return s.fail(ctx, "put", key, err)
	}
	if err := w.Close(); err != nil {
		return s.fail(ctx, "put", key, err)
	}
	return nil
}

// Get opens the object for reading. The library itself re-requests the rest
// of a body whose connection broke; on top of that the reader re-opens
// from the offset reached (pinned to the generation it first saw) when a
// read stalls or the library's own resumption fails. The library's loop has
// no attempt limit: against a server that always drops the body right after
// the headers it only ends when the stall watchdog cancels the read.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r := &resumeReader{s: s, ctx: ctx, key: key, size: -1}
	if err := r.open(); err != nil {
		return nil, s.fail(ctx, "get", key, err)
	}
	return r, nil
}

// Head returns the object's size and modification time.
func (s *Store) Head(ctx context.Context, key string) (storage.Object, error) {
	obj, _, err := s.object(ctx, key)
	if err != nil {
		return storage.Object{}, err
	}
	a, err := obj.Attrs(ctx)
	if err != nil {
		return storage.Object{}, s.fail(ctx, "head", key, err)
	}
	return storage.Object{Key: key, Size: a.Size, Modified: a.Updated}, nil
}

// List returns every object whose key starts with prefix, sorted by key.
func (s *Store) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	b, err := s.bucketHandle(ctx)
	if err != nil {
		return nil, err
	}
	t := &tries{max: int64(s.attempts)}
	q := &gstorage.Query{Prefix: s.name(prefix)}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Updated"}); err != nil {
		return nil, err
	}
	it := b.Retryer(s.retryOptions(t)...).Objects(ctx, q)
	var out []storage.Object
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			return nil, s.fail(ctx, "list", prefix, err)
		}
		t.failed.Store(0) // the budget is per page
		k, ok := strings.CutPrefix(a.Name, s.prefix)
		if !ok {
			continue
		}
		out = append(out, storage.Object{Key: k, Size: a.Size, Modified: a.Updated})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes the object; a missing object is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	obj, _, err := s.object(ctx, key)
	if err != nil {
		return err
	}
	if err := obj.Delete(ctx); err != nil && !errors.Is(err, gstorage.ErrObjectNotExist) {
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}

// opError is the one-line error every operation returns; err is kept for
// errors.Is/As.
type opError struct {
	msg string
	err error
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() error { return e.err }

// fail formats "gcs <op> <key>: <cause>", or "gcs <op> <key>: giving up
// after N attempts: <cause>" when a transient error outlived the retries.
// A missing object wraps storage.ErrNotFound.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	if errors.Is(err, gstorage.ErrObjectNotExist) && op != "delete" && op != "list" {
		return &opError{msg: fmt.Sprintf("gcs %s %s: %v", op, key, storage.ErrNotFound), err: storage.ErrNotFound}
	}
	cause := rootCause(err)
	var gu *gaveUp
	var se *sourceError
	switch {
	case errors.As(err, &se):
		return &opError{msg: oneLine(fmt.Sprintf("gcs %s %s: reading the data to upload: %v", op, key, se.err)), err: err}
	case errors.As(err, &gu):
		return &opError{msg: oneLine(fmt.Sprintf("gcs %s %s: giving up after %d attempts: %s", op, key, gu.attempts, describe(gu.err))), err: err}
	case ctx.Err() == nil && gstorage.ShouldRetry(cause):
		// A retryable error only ever surfaces once the attempts ran out.
		return &opError{msg: oneLine(fmt.Sprintf("gcs %s %s: giving up after %d attempts: %s", op, key, s.attempts, describe(cause))), err: err}
	}
	return &opError{msg: oneLine(fmt.Sprintf("gcs %s %s: %s", op, key, describe(cause))), err: err}
}

// rootCause strips the library's retry wrappers, whose texts repeat what
// fail says better.
func rootCause(err error) error {
	for {
		msg := err.Error()
		u := errors.Unwrap(err)
		if u == nil || !(strings.HasPrefix(msg, "storage: retry failed after ") ||
			strings.HasPrefix(msg, "chunk upload failed after ") ||
			strings.HasPrefix(msg, "storage: retry deadline of ")) {
			return err
		}
		err = u
	}
}

func describe(err error) string {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		msg := ge.Message
		if msg == "" {
			msg = bodyMessage(ge.Body)
		}
		if msg == "" {
			msg = http.StatusText(ge.Code)
		}
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		return fmt.Sprintf("%s (HTTP %d)", msg, ge.Code)
	}
	return err.Error()
}

// bodyMessage finds the message in an error body the library did not
// parse: the XML API's <Error><Message>, or a JSON API error.
func bodyMessage(body string) string {
	var x struct {
		Message string `xml:"Message"`
	}
	if xml.Unmarshal([]byte(body), &x) == nil && x.Message != "" {
		return x.Message
	}
	var j struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(body), &j) == nil && j.Error.Message != "" {
		return j.Error.Message
	}
	return strings.TrimSpace(body)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// gaveUp marks a download that broke more often than the attempt count.
type gaveUp struct {
	attempts int
	err      error
}

func (g *gaveUp) Error() string {
	return fmt.Sprintf("giving up after %d attempts: %v", g.attempts, g.err)
}
func (g *gaveUp) Unwrap() error { return g.err }

var errStalled = errors.New("connection stalled")

// resumeReader re-opens the object from the offset reached when a read
// fails or stalls, pinned to the first generation read.
type resumeReader struct {
	s   *Store
	ctx context.Context
	key string

	gen  int64
	size int64
	off  int64

	rd      *gstorage.Reader
	cancel  context.CancelFunc
	watch   *time.Timer
	stalled *atomic.Bool

	fails int
	err   error
}

func (r *resumeReader) open() error {
	obj, _, err := r.s.object(r.ctx, r.key)
	if err != nil {
		return err
	}
	if r.gen != 0 {
		obj = obj.Generation(r.gen)
	}
	rctx, cancel := context.WithCancel(r.ctx)
	rd, err := obj.NewRangeReader(rctx, r.off, -1)
	if err != nil {
		cancel()
		return err
	}
	if r.off == 0 {
		r.gen, r.size = rd.Attrs.Generation, rd.Attrs.Size
	}
	stalled := new(atomic.Bool)
	r.rd, r.cancel, r.stalled = rd, cancel, stalled
	r.watch = time.AfterFunc(time.Hour, func() {
		stalled.Store(true)
		cancel()
	})
	r.watch.Stop()
	return nil
}

func (r *resumeReader) closeReader() {
	if r.rd == nil {
		return
	}
	r.watch.Stop()
	r.cancel()
	r.rd.Close()
	r.rd = nil
}

func (r *resumeReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if r.rd == nil {
			if err := r.pause(); err != nil {
				return 0, r.stop(err)
			}
			if err := r.open(); err != nil {
				return 0, r.stop(err)
			}
		}
		r.watch.Reset(r.s.stall)
		n, err := r.rd.Read(p)
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
		r.closeReader()
		r.fails++
		if r.fails >= r.s.attempts {
			return n, r.stop(&gaveUp{attempts: r.fails, err: fmt.Errorf("reading at offset %d: %w", r.off, err)})
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (r *resumeReader) pause() error {
	d := min(100*time.Millisecond<<min(r.fails-1, 10), r.s.backoff.Max)
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
	r.closeReader()
	r.err = r.s.fail(r.ctx, "get", r.key, err)
	return r.err
}

// Close releases the connection; reading after Close fails.
func (r *resumeReader) Close() error {
	r.closeReader()
	if r.err == nil {
		r.err = errors.New("gcs get " + r.key + ": read after close")
	}
	return nil
}

// exactReader fails unless r yields exactly size bytes, so a short or long
// source never commits an object.
type exactReader struct {
	r          io.Reader
	left, size int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		var one [1]byte
		for {
			n, err := e.r.Read(one[:])
			if n > 0 {
				return 0, errors.New("the data to upload is longer than its declared size")
			}
			if err == io.EOF {
				return 0, io.EOF
			}
			if err != nil {
				return 0, err
			}
		}
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("the data to upload ended after %d of %d declared bytes: %w", e.size-e.left, e.size, io.ErrUnexpectedEOF)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// sourceError marks a failure to read the caller's data, which no retry
// of the upload can cure.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "reading the data to upload: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
