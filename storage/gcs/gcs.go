// Package gcs stores objects in Google Cloud Storage, the backend of
// WALE_GS_PREFIX, through cloud.google.com/go/storage.
//
// Physical names follow WAL-E (wal-e-compat.md 3.1): WAL-E's GCS object
// names start with a slash, "/" + path_prefix + key, e.g.
// "/prod/db1/wal_005/X.lzo", or "/wal_005/X.lzo" with an empty path. Lists
// use "/" + path_prefix + prefix and return keys relative to path_prefix.
//
// Doubled slashes (design.md 8.5): WAL-E uploaded to the literal URL path
// of the raw prefix, so a prefix typed as gs://bucket//prod wrote objects
// named "//prod/...", yet listed "/prod/...". walden writes the form WAL-E
// wrote (Prefix.RawPath() + "/" + key) and reads both: Get and Head try the
// written form first, List lists both and merges, Delete removes both. For
// a prefix whose two forms agree (the usual case) there is one name only.
//
// Uploads are resumable uploads in chunks of at most 16 MiB (bounded
// memory) that become visible only when the last chunk is committed; a
// failed upload is abandoned by cancelling its context, so nothing is
// committed.
package gcs

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
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
	htransport "google.golang.org/api/transport/http"

	"github.com/walden-pg/walden/internal/ctxio"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/internal/deadline"
	"github.com/walden-pg/walden/storage/internal/upload"
	"github.com/walden-pg/walden/storage/resume"
)

const (
	// ChunkSize bounds an upload's buffer; smaller known-size objects get
	// a chunk just large enough for them.
	ChunkSize = 16 << 20
	minChunk  = 256 << 10 // the service's chunk granularity

	initialBackoff = 500 * time.Millisecond
)

// Option adjusts a Store; tests use it to shorten waits. The options are
// shared with the other cloud backends.
type Option = resume.Option

// WithBackoff caps the exponential backoff between attempts (default 20 s).
func WithBackoff(max time.Duration) Option { return resume.WithBackoff(max) }

// WithStallTimeout sets how long a download may receive nothing before the
// connection is given up and the rest re-requested (default 2 min).
func WithStallTimeout(d time.Duration) Option { return resume.WithStallTimeout(d) }

// WithRequestLimits sets how long a request may wait for its answer
// (response, plus perMiB per MiB it sends) and how long an operation may
// make no progress (idle; 0 disables that bound).
func WithRequestLimits(response, perMiB, idle time.Duration) Option {
	return resume.WithRequestLimits(response, perMiB, idle)
}

var _ storage.Store = (*Store)(nil)

// Store is a GCS bucket and WAL-E path prefix.
type Store struct {
	bucket string
	// forms are the prefixes of an object's possible names: the one
	// WAL-E wrote (RawPath + "/"), then, when it differs, the one WAL-E
	// listed ("/" + path_prefix).
	forms    []string
	attempts int
	backoff  gax.Backoff
	opts     resume.Options
	copts    []option.ClientOption

	bucketSeen atomic.Bool // the bucket was found once

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
	o := resume.NewOptions(opts...)
	if p.Store == "" {
		return nil, errors.New("gcs: the prefix names no bucket")
	}
	attempts := resume.Attempts(retries)
	s := &Store{
		bucket:   p.Store,
		forms:    []string{p.RawPath() + "/"},
		attempts: attempts,
		backoff:  gax.Backoff{Initial: min(initialBackoff, o.MaxBackoff), Max: o.MaxBackoff, Multiplier: 2},
		opts:     o,
	}
	if listed := "/" + p.Path; listed != s.forms[0] {
		s.forms = append(s.forms, listed)
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
		cctx := context.WithoutCancel(ctx)
		hc, err := s.httpClient(cctx)
		if err != nil {
			return nil, fmt.Errorf("gcs: creating the client: %s", oneLine(err.Error()))
		}
		c, err := gstorage.NewClient(cctx, append(s.copts, option.WithHTTPClient(hc))...)
		if err != nil {
			return nil, fmt.Errorf("gcs: creating the client: %s", oneLine(err.Error()))
		}
		s.client = c
	}
	return s.client.Bucket(s.bucket), nil
}

// httpClient is the library's transport with deadline.Transport beneath
// its authentication: every request is bounded, and download bodies fail
// opaquely so that the resume reader (not the library, which has no
// attempt limit there) re-requests them.
func (s *Store) httpClient(ctx context.Context) (*http.Client, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	base.TLSHandshakeTimeout = 10 * time.Second
	base.ResponseHeaderTimeout = 2 * time.Minute
	base.MaxIdleConnsPerHost = 64
	var rt http.RoundTripper = &deadline.Transport{
		Base:   base,
		Limits: deadline.Limits{Response: s.opts.Response, PerMiB: s.opts.PerMiB, Stall: s.opts.StallTimeout},
		Opaque: isMediaDownload,
	}
	if os.Getenv("STORAGE_EMULATOR_HOST") == "" {
		// What the library would configure itself without WithHTTPClient.
		opts := append([]option.ClientOption{option.WithScopes(gstorage.ScopeFullControl, "https://www.googleapis.com/auth/cloud-platform")}, s.copts...)
		var err error
		if rt, err = htransport.NewTransport(ctx, rt, opts...); err != nil {
			return nil, err
		}
	}
	return &http.Client{Transport: rt}, nil
}

// isMediaDownload tells object reads (XML API GET /BUCKET/OBJECT, or JSON
// API alt=media) from metadata requests, whose cut bodies the library
// retries within its attempt limit.
func isMediaDownload(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	if r.URL.Query().Get("alt") == "media" {
		return true
	}
	p := r.URL.Path
	return !strings.HasPrefix(p, "/storage/v1/") && !strings.HasPrefix(p, "/upload/")
}

// names are the physical names key may have, the written one first.
func (s *Store) names(key string) []string {
	out := make([]string, len(s.forms))
	for i, f := range s.forms {
		out[i] = f + key
	}
	return out
}

// rel returns name relative to the longest form it starts with (one form
// can extend the other: gs://b/p// writes "/p/..." but lists "/p//...").
func (s *Store) rel(name string) (key, form string, ok bool) {
	for _, f := range s.forms {
		if strings.HasPrefix(name, f) && len(f) > len(form) {
			form = f
		}
	}
	return name[len(form):], form, form != ""
}

// tries is one operation's retry budget. The library asks it after every
// failed attempt; it allows attempts-1 retries of transient errors. The
// resumable-upload path has no attempt limit of its own, so this is what
// bounds it (reset after every committed chunk). total counts every failed
// attempt, for the message that gives up.
type tries struct {
	max    int64
	failed atomic.Int64
	total  atomic.Int64
	gaveUp atomic.Bool // the library stopped because the budget ran out
}

func (t *tries) retry(err error) bool {
	if _, _, _, bad := deadline.CertProblem(err); bad || !gstorage.ShouldRetry(err) {
		return false
	}
	t.total.Add(1)
	if t.failed.Add(1) < t.max {
		return true
	}
	t.gaveUp.Store(true)
	return false
}

// object returns a handle with a retry configuration of its own: the
// budget is per operation. (Retryer merges into a handle's existing config
// in place, which is why the client itself is never given one.)
func (s *Store) object(ctx context.Context, name string) (*gstorage.ObjectHandle, *tries, error) {
	b, err := s.bucketHandle(ctx)
	if err != nil {
		return nil, nil, err
	}
	t := &tries{max: int64(s.attempts)}
	return b.Object(name).Retryer(s.retryOptions(t)...), t, nil
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
//
// The library retries what it can; an upload that fails in a way it does
// not retry (an answer cut after its headers, a session start answered
// without a session) is restarted here from the start of the data, which
// is kept until the first chunk is committed (all of an object of at most
// ChunkSize bytes, every WAL segment). Both kinds of retry draw on the one
// WALE_RETRIES budget.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) error {
	ctx, done := deadline.Operation(ctx, s.opts.Idle)
	defer done()
	src := ctxio.Reader(ctx, r)
	if size >= 0 {
		src = upload.Exact(src, size)
	}
	rp := &replay{src: upload.Source(src), limit: ChunkSize + 1<<20, sum: md5.New()}
	t := &tries{max: int64(s.attempts)}
	for attempt := 1; ; attempt++ {
		err := s.putOnce(ctx, key, rp, size, opts, t)
		if err == nil {
			s.bucketSeen.Store(true)
			return nil
		}
		if opts.IfAbsent && isPreconditionFailed(err) {
			// A retried create may find its own earlier attempt, whose
			// answer was lost, committed.
			if (attempt > 1 || t.total.Load() > 0) && s.storedIs(ctx, key, rp.sum) {
				return nil
			}
			return &opError{msg: fmt.Sprintf("gcs put %s: %v", key, storage.ErrExists), err: storage.ErrExists}
		}
		var se *upload.SourceError
		if errors.As(err, &se) || ctx.Err() != nil || !transient(err) || !rp.rewind() {
			return s.failPut(ctx, key, err, t)
		}
		if !t.gaveUp.Load() {
			// The library did not count this failure: it did not retry it.
			t.total.Add(1)
			if t.failed.Add(1) >= t.max {
				t.gaveUp.Store(true)
			}
		}
		if t.gaveUp.Load() {
			return s.failPut(ctx, key, err, t)
		}
		if err := sleep(ctx, s.backoff.Pause()); err != nil {
			return s.failPut(ctx, key, err, t)
		}
	}
}

// putOnce is one upload of rp through the library.
func (s *Store) putOnce(ctx context.Context, key string, rp *replay, size int64, opts storage.PutOptions, t *tries) error {
	b, err := s.bucketHandle(ctx)
	if err != nil {
		return err
	}
	obj := b.Object(s.forms[0] + key).Retryer(s.retryOptions(t)...)
	if opts.IfAbsent {
		obj = obj.If(gstorage.Conditions{DoesNotExist: true})
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
	w.ProgressFunc = func(n int64) {
		if n > 0 {
			t.failed.Store(0)
			rp.committed()
		}
	}
	if _, err := io.Copy(w, rp); err != nil {
		// Abandon the resumable upload before its last chunk is sent.
		cancel()
		w.Close()
		return err
	}
	return w.Close()
}

// transient reports an upload failure worth starting again: what the
// library deems retryable, and a session start answered without a session
// URL (the library then posts to "").
func transient(err error) bool {
	if _, _, _, bad := deadline.CertProblem(err); bad {
		return false // a refused certificate stays refused
	}
	if gstorage.ShouldRetry(rootCause(err)) || deadline.IsHang(err) {
		return true
	}
	var ue *url.Error
	return errors.As(err, &ue) && ue.URL == ""
}

func isPreconditionFailed(err error) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == http.StatusPreconditionFailed
}

// storedIs reports whether key holds exactly the bytes whose MD5 is sum.
func (s *Store) storedIs(ctx context.Context, key string, sum hash.Hash) bool {
	if sum == nil {
		return false
	}
	obj, _, err := s.object(ctx, s.forms[0]+key)
	if err != nil {
		return false
	}
	a, err := obj.Attrs(ctx)
	return err == nil && bytes.Equal(a.MD5, sum.Sum(nil))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// replay passes src through, keeping what it read until the first chunk is
// committed (or limit is passed), so that an upload can start over.
type replay struct {
	src   io.Reader
	limit int
	buf   []byte
	pos   int       // read position while replaying buf
	sum   hash.Hash // MD5 of everything read
	lost  bool      // data was read and not kept: no rewinding
	eof   bool
	sent  atomic.Bool // a chunk was committed (set from the library's goroutine)
}

func (r *replay) Read(p []byte) (int, error) {
	if r.sent.Load() && !r.lost {
		r.drop()
	}
	if r.pos < len(r.buf) {
		n := copy(p, r.buf[r.pos:])
		r.pos += n
		return n, nil
	}
	if r.eof {
		return 0, io.EOF
	}
	n, err := r.src.Read(p)
	if n > 0 {
		if r.sum != nil {
			r.sum.Write(p[:n])
		}
		if !r.lost && len(r.buf)+n <= r.limit {
			r.buf = append(r.buf, p[:n]...)
			r.pos = len(r.buf)
		} else {
			r.drop()
		}
	}
	if err == io.EOF {
		r.eof = true
	}
	return n, err
}

func (r *replay) drop() { r.lost, r.buf, r.pos = true, nil, 0 }

// committed is called once data reached the service: a new upload could
// not reuse it, so nothing more is kept.
func (r *replay) committed() { r.sent.Store(true) }

// rewind starts the data over, if all of it read so far was kept.
func (r *replay) rewind() bool {
	if r.lost || r.sent.Load() {
		return false
	}
	r.pos = 0
	return true
}

// Get opens the object for reading. When a read stalls or the connection
// breaks, the reader re-opens from the offset reached (pinned to the
// generation it first saw). The library would re-request a broken body
// itself, without an attempt limit; each request is therefore marked as
// one download (deadline.OneDownload), so the library's re-request fails
// at once and the break counts against WALE_RETRIES here.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := resume.Open(ctx, resume.Config{
		Open:     s.opener(key),
		Attempts: s.attempts,
		Options:  s.opts,
		Fail:     func(err error) error { return s.fail(ctx, "get", key, err) },
	})
	if err != nil {
		return nil, s.fail(ctx, "get", key, err)
	}
	return r, nil
}

// opener opens the object from offset on. The first open tries each of
// key's names; the name found and its generation are kept for resumption.
func (s *Store) opener(key string) resume.Opener {
	names := s.names(key)
	var gen int64
	return func(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
		for i := 0; ; i++ {
			obj, _, err := s.object(ctx, names[i])
			if err != nil {
				return nil, 0, err
			}
			if gen != 0 {
				obj = obj.Generation(gen)
			}
			rd, err := obj.NewRangeReader(deadline.OneDownload(ctx), off, -1)
			if gen == 0 && i+1 < len(names) && errors.Is(err, gstorage.ErrObjectNotExist) {
				continue // not under the written name: try the listed one
			}
			if err != nil {
				return nil, 0, err
			}
			names = names[i : i+1]
			if off != 0 {
				return rd, -1, nil
			}
			gen = rd.Attrs.Generation
			return rd, rd.Attrs.Size, nil
		}
	}
}

// Head returns the object's size and modification time.
func (s *Store) Head(ctx context.Context, key string) (storage.Object, error) {
	ctx, done := deadline.Operation(ctx, s.opts.Idle)
	defer done()
	names := s.names(key)
	for i := 0; ; i++ {
		obj, _, err := s.object(ctx, names[i])
		if err != nil {
			return storage.Object{}, err
		}
		a, err := obj.Attrs(ctx)
		if i+1 < len(names) && errors.Is(err, gstorage.ErrObjectNotExist) {
			continue // not under the written name: try the listed one
		}
		if err != nil {
			return storage.Object{}, s.fail(ctx, "head", key, err)
		}
		s.bucketSeen.Store(true)
		return storage.Object{Key: key, Size: a.Size, Modified: a.Updated}, nil
	}
}

// List returns every object whose key starts with prefix, sorted by key.
// With two name forms both are listed; a key under both is reported once,
// as the written form (the one Get reads).
func (s *Store) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	ctx, done := deadline.Operation(ctx, s.opts.Idle)
	defer done()
	b, err := s.bucketHandle(ctx)
	if err != nil {
		return nil, err
	}
	var out []storage.Object
	seen := make(map[string]bool)
	for _, form := range s.forms {
		t := &tries{max: int64(s.attempts)}
		q := &gstorage.Query{Prefix: form + prefix}
		if err := q.SetAttrSelection([]string{"Name", "Size", "Updated"}); err != nil {
			return nil, err
		}
		it := b.Retryer(s.retryOptions(t)...).Objects(ctx, q)
		for {
			a, err := it.Next()
			if err == iterator.Done {
				break
			}
			if err != nil {
				return nil, s.fail(ctx, "list", prefix, err)
			}
			t.failed.Store(0) // the budget is per page
			k, f, ok := s.rel(a.Name)
			if !ok || f != form || seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, storage.Object{Key: k, Size: a.Size, Modified: a.Updated})
		}
	}
	s.bucketSeen.Store(true)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes the object under each of its names; a missing object is
// not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	ctx, done := deadline.Operation(ctx, s.opts.Idle)
	defer done()
	for _, name := range s.names(key) {
		obj, _, err := s.object(ctx, name)
		if err != nil {
			return err
		}
		if err := obj.Delete(ctx); err != nil && !errors.Is(err, gstorage.ErrObjectNotExist) {
			return s.fail(ctx, "delete", key, err)
		}
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

// failPut is fail for an upload, whose attempts t counted.
func (s *Store) failPut(ctx context.Context, key string, err error, t *tries) error {
	if h := deadline.Cause(ctx); h != nil {
		return &opError{msg: fmt.Sprintf("gcs put %s: %v", key, h), err: h}
	}
	if t.gaveUp.Load() {
		return &opError{msg: oneLine(fmt.Sprintf("gcs put %s: giving up after %d attempts: %s", key, t.total.Load(), describe(rootCause(err)))), err: err}
	}
	return s.fail(ctx, "put", key, &notRetried{err})
}

// notRetried marks an error that ended an operation at once.
type notRetried struct{ error }

func (e *notRetried) Unwrap() error { return e.error }

// fail formats "gcs <op> <key>: <cause>", or "gcs <op> <key>: giving up
// after N attempts: <cause>" when a transient error outlived the retries.
// A missing object wraps storage.ErrNotFound.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	if h := deadline.Cause(ctx); h != nil {
		return &opError{msg: fmt.Sprintf("gcs %s %s: %v", op, key, h), err: h}
	}
	bucketGone := errors.Is(err, gstorage.ErrBucketNotExist)
	if !bucketGone && errors.Is(err, gstorage.ErrObjectNotExist) && op != "delete" && op != "list" {
		// The library reports a missing bucket as a missing object on
		// reads: ask about the bucket before answering "not found".
		if !s.bucketMissing(ctx) {
			return &opError{msg: fmt.Sprintf("gcs %s %s: %v", op, key, storage.ErrNotFound), err: storage.ErrNotFound}
		}
		bucketGone = true
	}
	var ge *googleapi.Error
	if !bucketGone && (op == "put" || op == "list") && errors.As(err, &ge) && ge.Code == http.StatusNotFound {
		// Neither an upload nor a listing needs an object to exist.
		bucketGone = true
	}
	if bucketGone {
		return &opError{msg: fmt.Sprintf("gcs %s %s: bucket %q does not exist", op, key, s.bucket), err: err}
	}
	cause := rootCause(err)
	var gu *resume.GaveUp
	var se *upload.SourceError
	switch {
	case errors.As(err, &se):
		return &opError{msg: oneLine(fmt.Sprintf("gcs %s %s: reading the data to upload: %v", op, key, se.Err)), err: err}
	case errors.As(err, &gu):
		return &opError{msg: oneLine(fmt.Sprintf("gcs %s %s: giving up after %d attempts: %s", op, key, gu.Attempts, describe(gu.Err))), err: err}
	case ctx.Err() == nil && gstorage.ShouldRetry(cause) && !errors.As(err, new(*notRetried)) && !isCertProblem(err):
		// A retryable error only ever surfaces once the attempts ran out.
		return &opError{msg: oneLine(fmt.Sprintf("gcs %s %s: giving up after %d attempts: %s", op, key, s.attempts, describe(cause))), err: err}
	}
	return &opError{msg: oneLine(fmt.Sprintf("gcs %s %s: %s", op, key, describe(cause))), err: err}
}

// bucketMissing reports whether the bucket is known not to exist; a
// bucket seen once is not asked about again.
func (s *Store) bucketMissing(ctx context.Context) bool {
	if s.bucketSeen.Load() {
		return false
	}
	b, err := s.bucketHandle(ctx)
	if err != nil {
		return false
	}
	t := &tries{max: int64(s.attempts)}
	_, err = b.Retryer(s.retryOptions(t)...).Attrs(ctx)
	if err == nil {
		s.bucketSeen.Store(true)
	}
	return errors.Is(err, gstorage.ErrBucketNotExist)
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

func isCertProblem(err error) bool {
	_, _, _, bad := deadline.CertProblem(err)
	return bad
}

func describe(err error) string {
	if host, cause, unknownCA, ok := deadline.CertProblem(err); ok {
		d := fmt.Sprintf("TLS certificate of %s refused: %s", host, cause)
		if unknownCA {
			d += "; set SSL_CERT_FILE to the CA file"
		}
		return d
	}
	var hang *deadline.HangError
	if errors.As(err, &hang) {
		return hang.Error()
	}
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
