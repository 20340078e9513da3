package gcs

// The tests run the real client over HTTP against fake-gcs-server, through a
// recording, fault-injecting reverse proxy, all on 127.0.0.1. The client
// finds the proxy through STORAGE_EMULATOR_HOST, so the tests set the
// environment and cannot run in parallel.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/walden-pg/walden/storage"
)

const testBucket = "walden-test"

func TestMain(m *testing.M) {
	// Keep Application Default Credentials away from the host's files.
	dir, err := os.MkdirTemp("", "walden-gcs-test")
	if err != nil {
		panic(err)
	}
	os.Setenv("HOME", dir)
	os.Setenv("CLOUDSDK_CONFIG", dir)
	os.Unsetenv("GOOGLE_APPLICATION_CREDENTIALS")
	os.Unsetenv("STORAGE_EMULATOR_HOST")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type fakeGCS struct {
	srv      *fakestorage.Server
	proxy    *httptest.Server
	received atomic.Int64 // request body bytes forwarded to the fake

	mu   sync.Mutex
	seen []seen
	hook func(w http.ResponseWriter, r *http.Request, next http.Handler) bool
}

type seen struct {
	method, path string
	query        url.Values
	header       http.Header
}

func newFake(t *testing.T) *fakeGCS {
	t.Helper()
	// The proxy's address must be known before the fake starts: XML API
	// downloads (/bucket/object) are served only for its "public host".
	// The proxy keeps the Host header, so the fake also hands out
	// resumable-upload URLs on the proxy and chunks go through it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxyHost := l.Addr().String()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       "127.0.0.1",
		Port:       0,
		NoListener: false,
		PublicHost: proxyHost,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})

	f := &fakeGCS{srv: srv}
	target, _ := url.Parse(srv.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = countingBody{r.Body, &f.received}
		}
		rp.ServeHTTP(w, r)
	})
	f.proxy = &httptest.Server{
		Listener: l,
		Config: &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				f.mu.Lock()
				f.seen = append(f.seen, seen{r.Method, r.URL.EscapedPath(), r.URL.Query(), r.Header.Clone()})
				hook := f.hook
				f.mu.Unlock()
				if hook != nil && hook(w, r, next) {
					return
				}
				next.ServeHTTP(w, r)
			}),
			ErrorLog: log.New(io.Discard, "", 0),
		},
	}
	f.proxy.Start()
	t.Cleanup(f.proxy.Close)
	t.Setenv("STORAGE_EMULATOR_HOST", proxyHost)
	return f
}

func (f *fakeGCS) setHook(h func(w http.ResponseWriter, r *http.Request, next http.Handler) bool) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

func (f *fakeGCS) requests(match func(seen) bool) []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []seen
	for _, s := range f.seen {
		if match(s) {
			out = append(out, s)
		}
	}
	return out
}

func (f *fakeGCS) count() int { return len(f.requests(func(seen) bool { return true })) }

func (f *fakeGCS) store(t *testing.T, prefix string, retries int, opts ...Option) *Store {
	t.Helper()
	p, err := storage.ParsePrefix(prefix)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithBackoff(time.Millisecond)}, opts...)
	s, err := New(context.Background(), p, "", retries, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// names lists the physical object names through the fake's own API.
func (f *fakeGCS) names(t *testing.T) []string {
	t.Helper()
	objs, _, err := f.srv.ListObjectsWithOptions(testBucket, fakestorage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return out
}

func (f *fakeGCS) exists(name string) bool {
	_, err := f.srv.GetObject(testBucket, name)
	return err == nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Request classifiers.
func isUploadStart(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/upload/") && !r.URL.Query().Has("upload_id")
}
func isChunk(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/upload/") && r.URL.Query().Has("upload_id")
}
func isDownload(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/"+testBucket+"/")
}
func isAttrs(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/storage/v1/b/"+testBucket+"/o/")
}
func isList(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.TrimSuffix(r.URL.Path, "/") == "/storage/v1/b/"+testBucket+"/o"
}
func isDelete(r *http.Request) bool { return r.Method == http.MethodDelete }

func failFirst(n int64, match func(*http.Request) bool, fault func(w http.ResponseWriter, r *http.Request, next http.Handler)) func(http.ResponseWriter, *http.Request, http.Handler) bool {
	var count atomic.Int64
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !match(r) || count.Add(1) > n {
			return false
		}
		fault(w, r, next)
		return true
	}
}

// unavailable is GCS's 503 answer.
func unavailable(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	io.Copy(io.Discard, r.Body)
	if isDownload(r) { // the XML API
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable</Code><Message>Backend Error</Message></Error>`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `{"error":{"code":503,"message":"Backend Error","errors":[{"message":"Backend Error","reason":"backendError"}]}}`)
}

func hijackClose(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// dropMidUpload takes half the request body, then closes the connection;
// nothing reaches the fake.
func dropMidUpload(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	io.CopyN(io.Discard, r.Body, max(r.ContentLength/2, 1))
	hijackClose(w)
}

type cutWriter struct {
	http.ResponseWriter
	left  int64
	cut   bool
	stall bool
	ctx   context.Context
}

func (c *cutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.cut {
		return 0, errors.New("connection cut")
	}
	if int64(len(p)) <= c.left {
		c.left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	n, _ := c.ResponseWriter.Write(p[:c.left])
	c.cut = true
	http.NewResponseController(c.ResponseWriter).Flush()
	if c.stall {
		select {
		case <-c.ctx.Done():
		case <-time.After(10 * time.Second):
		}
	} else {
		hijackClose(c.ResponseWriter)
	}
	return n, errors.New("connection cut")
}

func randomBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	mrand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func readAll(t *testing.T, s *Store, key string) []byte {
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

func put(t *testing.T, s *Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func TestObjectNamesStartWithSlash(t *testing.T) {
	f := newFake(t)
	put(t, f.store(t, "gs://"+testBucket+"/prod/db1", 3), "wal_005/000000010000000000000001.lzo", []byte("a"))
	put(t, f.store(t, "gs://"+testBucket, 3), "wal_005/000000010000000000000002.lzo", []byte("b"))
	got := fmt.Sprint(f.names(t))
	if want := "[/prod/db1/wal_005/000000010000000000000001.lzo /wal_005/000000010000000000000002.lzo]"; got != want {
		t.Errorf("physical names %s, want %s", got, want)
	}
	// WAL-E's objects are found where WAL-E put them.
	f.srv.CreateObject(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: "/prod/db1/wal_005/000000010000000000000003.lzo"},
		Content:     []byte("wal-e"),
	})
	s := f.store(t, "gs://"+testBucket+"/prod/db1/", 3)
	if got := readAll(t, s, "wal_005/000000010000000000000003.lzo"); string(got) != "wal-e" {
		t.Errorf("got %q", got)
	}
}

func TestRoundTripUnderPrefixPath(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/prod/db1", 3)
	ctx := context.Background()
	objs := map[string][]byte{
		"wal_005/000000010000000000000002.lzo":                                             randomBytes(1, 300<<10),
		"wal_005/000000010000000000000001.lzo":                                             randomBytes(2, 1000),
		"basebackups_005/base_000000010000000000000002_00000040_backup_stop_sentinel.json": []byte(`{"x":1}`),
		"wal_005/empty": {},
	}
	for k, v := range objs {
		put(t, s, k, v)
	}
	for k, v := range objs {
		if got := readAll(t, s, k); !bytes.Equal(got, v) {
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
	if l := f.requests(func(s seen) bool { return s.query.Get("prefix") != "" }); len(l) == 0 || l[0].query.Get("prefix") != "/prod/db1/wal_005/" {
		t.Errorf("list requests %v, want prefix /prod/db1/wal_005/", l)
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

func TestMissingObjectIsErrNotFound(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	ctx := context.Background()
	if _, err := s.Get(ctx, "wal_005/nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("get: %v", err)
	}
	if _, err := s.Head(ctx, "wal_005/nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("head: %v", err)
	}
	if n := f.count(); n != 2 {
		t.Errorf("%d requests, want 2: not found is not retried", n)
	}
}

func TestPutSetsContentType(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	if err := s.Put(context.Background(), "a.json", strings.NewReader("{}"), 2, storage.PutOptions{ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	// Text that the library would sniff as text/plain.
	if err := s.Put(context.Background(), "b.lzo", strings.NewReader("plain text"), -1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"/p/a.json": "application/json", "/p/b.lzo": "application/octet-stream"} {
		o, err := f.srv.GetObject(testBucket, name)
		if err != nil || o.ContentType != want {
			t.Errorf("%s: content type %q, %v; want %q", name, o.ContentType, err, want)
		}
	}
}

// genReader yields pseudo-random bytes and records how far it ran ahead of
// what the fake had received.
type genReader struct {
	rng      *mrand.ChaCha8
	left     int64
	produced int64
	received *atomic.Int64
	maxLag   int64
	sum      io.Writer
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	g.rng.Read(p)
	g.left -= int64(len(p))
	g.produced += int64(len(p))
	g.sum.Write(p)
	if lag := g.produced - g.received.Load(); lag > g.maxLag {
		g.maxLag = lag
	}
	return len(p), nil
}

func TestPutUnknownSizeUploadsInBoundedChunks(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	const size = 40 << 20
	h := sha256.New()
	g := &genReader{rng: mrand.NewChaCha8([32]byte{9}), left: size, received: &f.received, sum: h}
	if err := s.Put(context.Background(), "big", g, -1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// One chunk buffered in the writer and one on the wire at most.
	if limit := int64(2*ChunkSize + 1<<20); g.maxLag > limit {
		t.Errorf("source ran %d MiB ahead of the server, want at most %d MiB", g.maxLag>>20, limit>>20)
	}
	if n := len(f.requests(func(s seen) bool { return s.query.Has("upload_id") })); n != 3 {
		t.Errorf("%d chunk requests, want 3 for 40 MiB", n)
	}
	rc, err := s.Get(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h2 := sha256.New()
	if n, err := io.Copy(h2, rc); err != nil || n != size {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	if !bytes.Equal(h.Sum(nil), h2.Sum(nil)) {
		t.Error("downloaded content differs from what was uploaded")
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestFailedPutCommitsNothing(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	ctx := context.Background()
	// The source fails after more than one chunk has been sent.
	src := io.MultiReader(bytes.NewReader(randomBytes(3, 20<<20)), readerFunc(func([]byte) (int, error) {
		return 0, errors.New("compressor died")
	}))
	err := s.Put(ctx, "big", src, -1, storage.PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "gcs put big: reading the data to upload: compressor died") {
		t.Errorf("err = %v", err)
	}
	if err := s.Put(ctx, "short", bytes.NewReader(make([]byte, 5)), 10, storage.PutOptions{}); err == nil {
		t.Error("short put succeeded")
	}
	if err := s.Put(ctx, "long", bytes.NewReader(make([]byte, 10)), 5, storage.PutOptions{}); err == nil {
		t.Error("long put succeeded")
	}
	if names := f.names(t); len(names) != 0 {
		t.Errorf("objects visible after failed puts: %v", names)
	}
}

func TestUnavailableIsRetriedForEveryOperation(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 5)
	ctx := context.Background()
	data := randomBytes(4, 100<<10)
	big := randomBytes(5, ChunkSize+1<<20)
	checks := []struct {
		name  string
		match func(*http.Request) bool
		want  int // requests
		op    func() error
	}{
		// A big upload: start the session, then two chunks.
		{"put chunk", isChunk, 6, func() error {
			return s.Put(ctx, "k", bytes.NewReader(big), -1, storage.PutOptions{})
		}},
		{"put session", isUploadStart, 6, func() error {
			return s.Put(ctx, "k", bytes.NewReader(big), -1, storage.PutOptions{})
		}},
		// An object smaller than a chunk is sent in one request.
		{"put small", isUploadStart, 4, func() error {
			return s.Put(ctx, "k", bytes.NewReader(data), int64(len(data)), storage.PutOptions{})
		}},
		{"get", isDownload, 4, func() error {
			rc, err := s.Get(ctx, "k")
			if err != nil {
				return err
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err == nil && !bytes.Equal(b, data) {
				err = errors.New("content differs")
			}
			return err
		}},
		{"head", isAttrs, 4, func() error { _, err := s.Head(ctx, "k"); return err }},
		{"list", isList, 4, func() error {
			l, err := s.List(ctx, "")
			if err == nil && len(l) != 1 {
				err = fmt.Errorf("listed %d objects", len(l))
			}
			return err
		}},
		{"delete", isDelete, 4, func() error { return s.Delete(ctx, "k") }},
	}
	for _, c := range checks {
		f.setHook(failFirst(3, c.match, unavailable))
		before := f.count()
		if err := c.op(); err != nil {
			t.Errorf("%s after three 503s: %v", c.name, err)
		}
		if n := f.count() - before; n != c.want {
			t.Errorf("%s took %d requests, want %d", c.name, n, c.want)
		}
	}
	if f.exists("/p/k") {
		t.Error("object survived delete")
	}
}

func TestUploadConnectionDropIsRetried(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	small := randomBytes(5, 1<<20)
	f.setHook(failFirst(1, isChunk, dropMidUpload))
	put(t, s, "small", small)
	if got := readAll(t, s, "small"); !bytes.Equal(got, small) {
		t.Error("small: content differs")
	}

	// Drop the second chunk of a chunked upload.
	big := randomBytes(6, 20<<20)
	var chunks atomic.Int64
	f.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isChunk(r) && chunks.Add(1) == 2 {
			dropMidUpload(w, r, next)
			return true
		}
		return false
	})
	if err := s.Put(context.Background(), "big", bytes.NewReader(big), -1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, "big"); !bytes.Equal(got, big) {
		t.Error("big: content differs")
	}
	if n := chunks.Load(); n != 3 {
		t.Errorf("%d chunk requests, want 2 plus one resend", n)
	}
}

func TestDownloadResumesWithRangeAfterConnectionDrop(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	data := randomBytes(7, 3<<20)
	put(t, s, "seg", data)
	half := int64(len(data) / 2)
	f.setHook(failFirst(1, isDownload, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(&cutWriter{ResponseWriter: w, left: half}, r)
	}))
	if got := readAll(t, s, "seg"); !bytes.Equal(got, data) {
		t.Fatal("content differs after resume")
	}
	gets := f.requests(func(s seen) bool { return s.method == http.MethodGet && strings.HasPrefix(s.path, "/"+testBucket+"/") })
	if len(gets) != 2 {
		t.Fatalf("%d downloads, want the cut one and one ranged", len(gets))
	}
	if got, want := gets[1].header.Get("Range"), fmt.Sprintf("bytes=%d-", half); got != want {
		t.Errorf("resume Range = %q, want %q", got, want)
	}
}

func TestDownloadResumesAfterStall(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3, WithStallTimeout(200*time.Millisecond))
	data := randomBytes(8, 1<<20)
	put(t, s, "seg", data)
	third := int64(len(data) / 3)
	f.setHook(failFirst(1, isDownload, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(&cutWriter{ResponseWriter: w, left: third, stall: true, ctx: r.Context()}, r)
	}))
	start := time.Now()
	if got := readAll(t, s, "seg"); !bytes.Equal(got, data) {
		t.Fatal("content differs after a stalled download")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stalled download took %v", d)
	}
	gets := f.requests(func(s seen) bool { return s.method == http.MethodGet && strings.HasPrefix(s.path, "/"+testBucket+"/") })
	if len(gets) != 2 || gets[1].header.Get("Range") != fmt.Sprintf("bytes=%d-", third) {
		t.Errorf("downloads after a stall: %d, last Range %q", len(gets), gets[len(gets)-1].header.Get("Range"))
	}
}

func TestGivingUpIsOneClearLine(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	ctx := context.Background()
	put(t, s, "k", []byte("abc"))
	f.setHook(failFirst(1<<30, func(*http.Request) bool { return true }, unavailable))
	ops := []struct {
		name string
		op   func() error
	}{
		{"put", func() error { return s.Put(ctx, "k", strings.NewReader("abc"), 3, storage.PutOptions{}) }},
		{"put", func() error {
			// A chunked upload whose session starts but whose chunks are refused.
			f.setHook(failFirst(1<<30, isChunk, unavailable))
			defer f.setHook(failFirst(1<<30, func(*http.Request) bool { return true }, unavailable))
			return s.Put(ctx, "k", bytes.NewReader(make([]byte, ChunkSize+1)), -1, storage.PutOptions{})
		}},
		{"get", func() error { _, err := s.Get(ctx, "k"); return err }},
		{"head", func() error { _, err := s.Head(ctx, "k"); return err }},
		{"list", func() error { _, err := s.List(ctx, "wal_005/"); return err }},
		{"delete", func() error { return s.Delete(ctx, "k") }},
	}
	for i, o := range ops {
		before := f.count()
		err := o.op()
		if err == nil {
			t.Errorf("%s succeeded against a server that always answers 503", o.name)
			continue
		}
		want := 3
		if i == 1 {
			want = 4 // the chunked upload started its session
		}
		if n := f.count() - before; n != want {
			t.Errorf("%s made %d requests, want %d", o.name, n, want)
		}
		msg := err.Error()
		key := "k"
		if o.name == "list" {
			key = "wal_005/"
		}
		if want := "gcs " + o.name + " " + key + ": giving up after 3 attempts: "; !strings.HasPrefix(msg, want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q does not start with %q on one line", o.name, msg, want)
		}
		if !strings.HasSuffix(msg, ": Backend Error (HTTP 503)") {
			t.Errorf("%s: %q lost the cause", o.name, msg)
		}
	}
}

// writeServiceAccount writes a service-account key file whose token
// endpoint is tokenURL.
func writeServiceAccount(t *testing.T, tokenURL string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "walden-test",
		"private_key_id": "0123",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "walden@walden-test.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      tokenURL,
	})
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func countingListener(t *testing.T) (string, *atomic.Int64) {
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

func TestNewMakesNoNetworkRoundTrip(t *testing.T) {
	addr, conns := countingListener(t)
	// Any metadata-server or token request would land on the listener.
	t.Setenv("GCE_METADATA_HOST", addr)
	t.Setenv("GCE_METADATA_IP", addr)
	p, _ := storage.ParsePrefix("gs://" + testBucket + "/p")
	ctx := context.Background()
	s1, err := New(ctx, p, "", 3) // Application Default Credentials
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := New(ctx, p, writeServiceAccount(t, "http://"+addr+"/token"), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.client == nil {
		t.Error("a credentials file should be read in New")
	}
	time.Sleep(50 * time.Millisecond)
	if n := conns.Load(); n != 0 {
		t.Errorf("New made %d connections", n)
	}
}

func TestNewRejectsABadCredentialsFile(t *testing.T) {
	p, _ := storage.ParsePrefix("gs://" + testBucket + "/p")
	if _, err := New(context.Background(), p, filepath.Join(t.TempDir(), "missing.json"), 3); err == nil ||
		!strings.HasPrefix(err.Error(), "GOOGLE_APPLICATION_CREDENTIALS: ") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte("not json"), 0o600)
	if _, err := New(context.Background(), p, bad, 3); err == nil {
		t.Error("garbage accepted as credentials")
	}
}
