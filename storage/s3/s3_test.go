package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/storage"
)

const (
	testBucket = "walden-test"
	testKeyID  = "AKIAWALDENTESTKEYID7"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWALDENSECRET"
	testToken  = "FwoGZXIvYXdzEWALDENSESSIONTOKENxyz"
)

func TestMain(m *testing.M) {
	// The SDK's default chain must not read the host's AWS files or reach
	// the instance metadata service: tests only ever talk to 127.0.0.1.
	dir, err := os.MkdirTemp("", "walden-s3-test")
	if err != nil {
		panic(err)
	}
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, v := range []string{"AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_DEFAULTS_MODE"} {
		os.Unsetenv(v)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fakeS3 is gofakes3 behind a recording, fault-injecting handler.
type fakeS3 struct {
	backend  *s3mem.Backend
	srv      *httptest.Server
	received atomic.Int64 // request body bytes that reached gofakes3

	mu   sync.Mutex
	seen []seen
	hook func(w http.ResponseWriter, r *http.Request, next http.Handler) bool
}

type seen struct {
	method, key string
	query       map[string][]string
	header      http.Header
}

func newFake(t *testing.T) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New()}
	if err := f.backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	inner := gofakes3.New(f.backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = countingBody{r.Body, &f.received}
		inner.ServeHTTP(w, r)
	})
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, seen{r.Method, objectKey(r), r.URL.Query(), r.Header.Clone()})
		hook := f.hook
		f.mu.Unlock()
		if hook != nil && hook(w, r, next) {
			return
		}
		next.ServeHTTP(w, r)
	}))
	// gofakes3 keeps writing after a fault hijacked its connection.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeS3) setHook(h func(w http.ResponseWriter, r *http.Request, next http.Handler) bool) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

func (f *fakeS3) requests(match func(seen) bool) []seen {
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

func (f *fakeS3) config() config.S3 {
	return config.S3{
		Endpoint:        "http+path://" + strings.TrimPrefix(f.srv.URL, "http://"),
		AccessKeyID:     testKeyID,
		SecretAccessKey: testSecret,
		SessionToken:    testToken,
		StorageClass:    "STANDARD_IA",
	}
}

func (f *fakeS3) store(t *testing.T, prefix string, retries int, opts ...Option) *Store {
	t.Helper()
	p, err := storage.ParsePrefix(prefix)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithBackoff(time.Millisecond)}, opts...)
	s, err := New(context.Background(), p, f.config(), retries, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fakeS3) physicalExists(key string) bool {
	_, err := f.backend.HeadObject(testBucket, key)
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

func objectKey(r *http.Request) string {
	return strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/"+testBucket), "/")
}

// Request classifiers (path-style requests).
func has(r *http.Request, q string) bool { _, ok := r.URL.Query()[q]; return ok }
func isPut(r *http.Request) bool {
	return r.Method == http.MethodPut && !has(r, "partNumber") && !has(r, "uploadId")
}
func isPart(r *http.Request) bool { return r.Method == http.MethodPut && has(r, "partNumber") }
func isGet(r *http.Request) bool {
	return r.Method == http.MethodGet && objectKey(r) != "" && !has(r, "uploads")
}
func isHead(r *http.Request) bool   { return r.Method == http.MethodHead }
func isList(r *http.Request) bool   { return r.Method == http.MethodGet && objectKey(r) == "" }
func isDelete(r *http.Request) bool { return r.Method == http.MethodDelete && !has(r, "uploadId") }
func isDeleteMany(r *http.Request) bool {
	return r.Method == http.MethodPost && has(r, "delete")
}
func isAbort(r *http.Request) bool { return r.Method == http.MethodDelete && has(r, "uploadId") }

// failFirst applies fault to the first n requests that match.
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

// slowDown is S3's throttling answer.
func slowDown(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>FAKE</RequestId></Error>`)
}

func hijackClose(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// dropMidUpload takes half the request body, then closes the connection
// without an answer.
func dropMidUpload(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	io.CopyN(io.Discard, r.Body, max(r.ContentLength/2, 1))
	hijackClose(w)
}

// cutAt serves the request but closes the connection after limit bytes of
// the response body.
func cutAt(limit func(r *http.Request) int64) func(http.ResponseWriter, *http.Request, http.Handler) {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(&cutWriter{ResponseWriter: w, left: limit(r)}, r)
	}
}

type cutWriter struct {
	http.ResponseWriter
	left  int64
	cut   bool
	stall bool // block instead of closing
	ctx   context.Context
}

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

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	rand.NewChaCha8(s).Read(b)
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
	if err := s.Put(context.Background(), key, bytes.NewBuffer(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{testKeyID, testSecret, testToken} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks a credential: %v", err)
		}
	}
}

func TestRoundTripUnderPrefixPath(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/prod/db1", 3)
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
	// Physical keys are path_prefix + key, without a leading slash.
	if !f.physicalExists("prod/db1/wal_005/000000010000000000000001.lzo") {
		t.Fatal("object not stored under prod/db1/")
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

func TestPhysicalKeysCollapseRepeatedSlashes(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"//prod//db1/", 3)
	put(t, s, "wal_005/x", []byte("x"))
	if !f.physicalExists("prod/db1/wal_005/x") {
		t.Fatalf("stored as %v, want prod/db1/wal_005/x", f.requests(func(s seen) bool { return s.method == http.MethodPut }))
	}
	l, err := s.List(context.Background(), "wal_005/")
	if err != nil || len(l) != 1 || l[0].Key != "wal_005/x" {
		t.Errorf("list = %v, %v", l, err)
	}
	if got := readAll(t, s, "wal_005/x"); string(got) != "x" {
		t.Errorf("got %q", got)
	}
}

func TestMissingObjectIsErrNotFound(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	ctx := context.Background()
	if _, err := s.Get(ctx, "wal_005/nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("get: %v", err)
	}
	if _, err := s.Head(ctx, "wal_005/nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("head: %v", err)
	}
	// Not found is an answer, not a failure: it is not retried.
	if n := len(f.requests(func(s seen) bool { return s.method == http.MethodGet })); n != 1 {
		t.Errorf("%d GET requests for a missing object, want 1", n)
	}
}

func TestPutSendsStorageClassSSEAndContentType(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	ctx := context.Background()
	if err := s.Put(ctx, "a.json", strings.NewReader("{}"), 2, storage.PutOptions{ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	put(t, s, "b.lzo", []byte("data"))
	puts := f.requests(func(s seen) bool { return s.method == http.MethodPut })
	if len(puts) != 2 {
		t.Fatalf("%d PUTs, want 2", len(puts))
	}
	for i, wantCT := range []string{"application/json", "application/octet-stream"} {
		h := puts[i].header
		if got := h.Get("X-Amz-Storage-Class"); got != "STANDARD_IA" {
			t.Errorf("%s: x-amz-storage-class = %q", puts[i].key, got)
		}
		if got := h.Get("X-Amz-Server-Side-Encryption"); got != "AES256" {
			t.Errorf("%s: x-amz-server-side-encryption = %q", puts[i].key, got)
		}
		if got := h.Get("Content-Type"); got != wantCT {
			t.Errorf("%s: Content-Type = %q, want %q", puts[i].key, got, wantCT)
		}
	}
	// gofakes3 ignores SSE but must still accept and serve the object.
	if got := readAll(t, s, "b.lzo"); string(got) != "data" {
		t.Errorf("got %q", got)
	}
}

// genReader yields n pseudo-random bytes and records how far it ran ahead
// of what the server had received.
type genReader struct {
	rng      *rand.ChaCha8
	left     int64
	produced int64
	received *atomic.Int64
	maxLag   int64
	sum      hash.Hash
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

func TestPutUnknownSizeStreamsMultipartWithBoundedMemory(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	const size = 100 << 20
	h := sha256.New()
	g := &genReader{rng: rand.NewChaCha8([32]byte{7}), left: size, received: &f.received, sum: h}
	if err := s.Put(context.Background(), "big", g, -1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// The source may run ahead of the server by the parts the uploader
	// holds (PartConcurrency in flight, one filling, one spare), never by
	// the whole object.
	t.Logf("the source ran at most %d MiB ahead of the server", g.maxLag>>20)
	if limit := int64(PartConcurrency+2) * PartSize; g.maxLag > limit {
		t.Errorf("source ran %d MiB ahead of the server, want at most %d MiB", g.maxLag>>20, limit>>20)
	}
	if n := len(f.requests(func(s seen) bool { return s.method == http.MethodPut && s.query["partNumber"] == nil })); n != 0 {
		t.Errorf("%d single PUTs, want none", n)
	}
	if n := len(f.requests(func(s seen) bool { return s.query["partNumber"] != nil })); n != 7 {
		t.Errorf("%d parts, want 7 of 16 MiB", n)
	}
	create := f.requests(func(s seen) bool { return s.method == http.MethodPost && s.query["uploads"] != nil })
	if len(create) != 1 || create[0].header.Get("X-Amz-Storage-Class") != "STANDARD_IA" ||
		create[0].header.Get("X-Amz-Server-Side-Encryption") != "AES256" {
		t.Errorf("CreateMultipartUpload without storage class or SSE: %+v", create)
	}
	o, err := s.Head(context.Background(), "big")
	if err != nil || o.Size != size {
		t.Fatalf("head = %+v, %v", o, err)
	}
	rc, err := s.Get(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h2 := sha256.New()
	if _, err := io.Copy(h2, rc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), h2.Sum(nil)) {
		t.Error("downloaded content differs from what was uploaded")
	}
}

func TestPutWithWrongDeclaredSizeFailsAndLeavesNothing(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	ctx := context.Background()
	if err := s.Put(ctx, "short", bytes.NewReader(make([]byte, 5)), 10, storage.PutOptions{}); err == nil {
		t.Error("short single put succeeded")
	}
	if err := s.Put(ctx, "long", strings.NewReader("0123456789"), 5, storage.PutOptions{}); err == nil {
		t.Error("long single put succeeded")
	}
	// Declared above SinglePutMax: multipart, and the source ends early.
	err := s.Put(ctx, "shortbig", io.LimitReader(rand.NewChaCha8([32]byte{}), 20<<20), SinglePutMax+1, storage.PutOptions{})
	if err == nil {
		t.Error("short multipart put succeeded")
	}
	for _, k := range []string{"p/short", "p/long", "p/shortbig"} {
		if f.physicalExists(k) {
			t.Errorf("%s is visible after a failed put", k)
		}
	}
	if len(f.requests(func(s seen) bool { return s.method == http.MethodDelete && s.query["uploadId"] != nil })) != 1 {
		t.Error("the failed multipart upload was not aborted")
	}
	assertNoPendingUploads(t, s)
}

func assertNoPendingUploads(t *testing.T, s *Store) {
	t.Helper()
	out, err := s.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(testBucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Errorf("%d multipart uploads left behind", len(out.Uploads))
	}
}

func TestFailedMultipartUploadIsAborted(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.setHook(failFirst(1<<30, isPart, slowDown))
	s := f.store(t, "s3://"+testBucket+"/p", 2)
	err := s.Put(context.Background(), "big", io.LimitReader(rand.NewChaCha8([32]byte{}), 20<<20), -1, storage.PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "s3 put big: giving up after 2 attempts") {
		t.Fatalf("err = %v", err)
	}
	if f.physicalExists("p/big") {
		t.Error("object visible after a failed multipart upload")
	}
	if len(f.requests(func(s seen) bool { return s.method == http.MethodDelete && s.query["uploadId"] != nil })) == 0 {
		t.Error("no AbortMultipartUpload")
	}
	f.setHook(nil)
	assertNoPendingUploads(t, s)
}

func TestCanceledMultipartUploadIsStillAborted(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once the first part is on its way.
	src := io.MultiReader(io.LimitReader(rand.NewChaCha8([32]byte{}), 20<<20), readerFunc(func([]byte) (int, error) {
		cancel()
		return 0, context.Canceled
	}))
	if err := s.Put(ctx, "big", src, -1, storage.PutOptions{}); err == nil {
		t.Fatal("canceled upload succeeded")
	}
	if f.physicalExists("p/big") {
		t.Error("object visible after a canceled upload")
	}
	assertNoPendingUploads(t, s)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestSlowDownIsRetriedForEveryOperation(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 5)
	ctx := context.Background()
	data := randomBytes(3, 100<<10)
	checks := []struct {
		name  string
		match func(*http.Request) bool
		op    func() error
	}{
		{"put", isPut, func() error { return s.Put(ctx, "k", bytes.NewReader(data), int64(len(data)), storage.PutOptions{}) }},
		{"get", isGet, func() error {
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
		{"head", isHead, func() error { _, err := s.Head(ctx, "k"); return err }},
		{"list", isList, func() error {
			l, err := s.List(ctx, "")
			if err == nil && len(l) != 1 {
				err = fmt.Errorf("listed %d objects", len(l))
			}
			return err
		}},
		{"delete", isDelete, func() error { return s.Delete(ctx, "k") }},
		{"deletemany", isDeleteMany, func() error { return s.DeleteMany(ctx, []string{"k"}) }},
	}
	for _, c := range checks {
		f.setHook(failFirst(3, c.match, slowDown))
		before := len(f.requests(func(seen) bool { return true }))
		if err := c.op(); err != nil {
			t.Errorf("%s after three SlowDowns: %v", c.name, err)
		}
		if n := len(f.requests(func(seen) bool { return true })) - before; n != 4 {
			t.Errorf("%s took %d requests, want 3 refused and 1 served", c.name, n)
		}
	}
	if f.physicalExists("p/k") {
		t.Error("object survived delete")
	}
}

func TestUploadConnectionDropIsRetried(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	small := randomBytes(4, 1<<20)
	f.setHook(failFirst(1, isPut, dropMidUpload))
	put(t, s, "small", small)
	if got := readAll(t, s, "small"); !bytes.Equal(got, small) {
		t.Error("single put: content differs")
	}
	if n := len(f.requests(func(s seen) bool { return s.method == http.MethodPut && s.key == "p/small" })); n != 2 {
		t.Errorf("single put took %d requests, want 2", n)
	}

	big := randomBytes(5, 20<<20)
	f.setHook(failFirst(1, isPart, dropMidUpload))
	if err := s.Put(context.Background(), "big", bytes.NewReader(big), -1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, "big"); !bytes.Equal(got, big) {
		t.Error("multipart: content differs")
	}
	if n := len(f.requests(func(s seen) bool { return s.query["partNumber"] != nil })); n != 3 {
		t.Errorf("multipart put sent %d parts, want 2 plus one resend", n)
	}
}

func TestDownloadResumesWithRangeAfterConnectionDrop(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	data := randomBytes(6, 3<<20)
	put(t, s, "seg", data)
	half := int64(len(data) / 2)
	f.setHook(failFirst(1, isGet, cutAt(func(*http.Request) int64 { return half })))
	if got := readAll(t, s, "seg"); !bytes.Equal(got, data) {
		t.Fatal("content differs after resume")
	}
	gets := f.requests(func(s seen) bool { return s.method == http.MethodGet && s.key == "p/seg" })
	if len(gets) != 2 {
		t.Fatalf("%d GETs, want the cut one and one ranged", len(gets))
	}
	last := gets[1]
	if got, want := last.header.Get("Range"), fmt.Sprintf("bytes=%d-", half); got != want {
		t.Errorf("resume Range = %q, want %q", got, want)
	}
	if last.header.Get("If-Match") == "" {
		t.Error("resume does not pin the ETag with If-Match")
	}
}

func TestDownloadResumesAfterStall(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3, WithStallTimeout(200*time.Millisecond))
	data := randomBytes(7, 1<<20)
	put(t, s, "seg", data)
	f.setHook(failFirst(1, isGet, func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(&cutWriter{ResponseWriter: w, left: int64(len(data) / 3), stall: true, ctx: r.Context()}, r)
	}))
	start := time.Now()
	if got := readAll(t, s, "seg"); !bytes.Equal(got, data) {
		t.Fatal("content differs after a stalled download")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stalled download took %v", d)
	}
}

func TestGivingUpIsOneClearLineWithoutSecrets(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	ctx := context.Background()
	put(t, s, "k", []byte("abc"))
	f.setHook(failFirst(1<<30, func(r *http.Request) bool { return true }, slowDown))
	before := len(f.requests(func(seen) bool { return true }))
	ops := map[string]func() error{
		"put":        func() error { return s.Put(ctx, "k", strings.NewReader("abc"), 3, storage.PutOptions{}) },
		"get":        func() error { _, err := s.Get(ctx, "k"); return err },
		"head":       func() error { _, err := s.Head(ctx, "k"); return err },
		"list":       func() error { _, err := s.List(ctx, "wal_005/"); return err },
		"delete":     func() error { return s.Delete(ctx, "k") },
		"deletemany": func() error { return s.DeleteMany(ctx, []string{"k"}) },
	}
	for name, op := range ops {
		err := op()
		if err == nil {
			t.Errorf("%s succeeded against a server that always says SlowDown", name)
			continue
		}
		msg := err.Error()
		want := "giving up after 3 attempts: SlowDown: Please reduce your request rate. (HTTP 503)"
		if name == "head" {
			want = "giving up after 3 attempts: ServiceUnavailable: Service Unavailable (HTTP 503)" // HEAD answers have no body
		}
		if !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q is not one clear line", name, msg)
		}
		assertNoSecrets(t, err)
	}
	if n := len(f.requests(func(seen) bool { return true })) - before; n != 3*len(ops) {
		t.Errorf("%d requests for %d operations, want 3 attempts each", n, len(ops))
	}
	if err := ops["put"](); !strings.HasPrefix(err.Error(), "s3 put k: giving up after 3 attempts: ") {
		t.Errorf("put error = %q", err)
	}

	// A download whose connection always breaks before the body gives up
	// the same way.
	f.setHook(failFirst(1<<30, isGet, cutAt(func(*http.Request) int64 { return 0 })))
	rc, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if err == nil || !strings.Contains(err.Error(), "s3 get k: giving up after 3 attempts") || strings.Contains(err.Error(), "\n") {
		t.Errorf("broken download: %v", err)
	}
}

func TestErrorsNeverContainCredentials(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 1)
	// A chatty S3-compatible server echoing what it was sent.
	f.setHook(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<Error><Code>InvalidAccessKeyId</Code><Message>key %s secret %s token %s</Message></Error>`, testKeyID, testSecret, testToken)
		return true
	})
	_, err := s.Head(context.Background(), "k")
	if err == nil {
		t.Fatal("no error")
	}
	assertNoSecrets(t, err)
	err = s.Put(context.Background(), "k", strings.NewReader("x"), 1, storage.PutOptions{})
	assertNoSecrets(t, err)
	if !strings.Contains(err.Error(), "InvalidAccessKeyId") {
		t.Errorf("the cause is lost: %v", err)
	}
}

func TestDeleteManyDeletesInBatchesOf1000(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	var keys []string
	for i := range 2500 {
		k := fmt.Sprintf("wal_005/%024X", i)
		keys = append(keys, k)
		if _, err := f.backend.PutObject(testBucket, "p/"+k, map[string]string{}, strings.NewReader("x"), 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	keys = append(keys, "wal_005/missing") // missing keys are fine
	if err := s.DeleteMany(context.Background(), keys); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.List(context.Background(), ""); len(l) != 0 {
		t.Errorf("%d objects left", len(l))
	}
	if n := len(f.requests(func(s seen) bool { return s.query["delete"] != nil })); n != 3 {
		t.Errorf("%d DeleteObjects requests, want 3", n)
	}
}

func TestDeleteManyReportsPerKeyFailures(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	// Answer DeleteObjects ourselves: deny keys containing "keep".
	f.setHook(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		if !isDeleteMany(r) {
			return false
		}
		var req struct {
			Objects []struct{ Key string } `xml:"Object"`
		}
		if err := xml.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return true
		}
		var b strings.Builder
		b.WriteString(`<DeleteResult>`)
		for _, o := range req.Objects {
			if strings.Contains(o.Key, "keep") {
				fmt.Fprintf(&b, `<Error><Key>%s</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`, o.Key)
			}
		}
		b.WriteString(`</DeleteResult>`)
		io.WriteString(w, b.String())
		return true
	})
	err := s.DeleteMany(context.Background(), []string{"a", "keep1", "b", "keep2"})
	var de *DeleteError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a *DeleteError", err)
	}
	if de.Total != 4 || len(de.Failures) != 2 || de.Failures[0].Key != "keep1" || de.Failures[1].Key != "keep2" ||
		de.Failures[0].Reason != "AccessDenied: Access Denied" {
		t.Errorf("failures = %+v", de)
	}
	if want := "s3 delete: 2 of 4 objects not deleted: keep1: AccessDenied: Access Denied; keep2: AccessDenied: Access Denied"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestNewRejectsIncompleteConfiguration(t *testing.T) {
	t.Parallel()
	p, _ := storage.ParsePrefix("s3://bucket/path")
	ctx := context.Background()
	if _, err := New(ctx, p, config.S3{}, 3); err == nil || err.Error() != "must define one of AWS_REGION or WALE_S3_ENDPOINT" {
		t.Errorf("no region or endpoint: %v", err)
	}
	_, err := New(ctx, p, config.S3{Region: "us-east-1", AccessKeyID: testKeyID}, 3)
	if err == nil || err.Error() != "AWS Secret Key credential is required but not provided (set AWS_SECRET_ACCESS_KEY)" {
		t.Errorf("no secret: %v", err)
	} else {
		assertNoSecrets(t, err)
	}
	if _, err := New(ctx, p, config.S3{Endpoint: "ftp+path://host"}, 3); err == nil {
		t.Error("bad endpoint accepted")
	}
	if _, err := New(ctx, p, config.S3{Region: "not a region"}, 3); err == nil || !strings.Contains(err.Error(), "Could not resolve host for AWS_REGION") {
		t.Errorf("bad region: %v", err)
	}
}

func TestAddressingStyleFollowsEndpointAndBucketName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		prefix   string
		c        config.S3
		path     bool
		endpoint string
		region   string
	}{
		{"s3://b-1/x", config.S3{Endpoint: "https+path://minio:9000"}, true, "https://minio:9000", "us-east-1"},
		{"s3://b-1/x", config.S3{Endpoint: "http+virtualhost://minio"}, false, "http://minio", "us-east-1"},
		{"s3://b-1/x", config.S3{Endpoint: "http+subdomain://minio", Region: "eu-west-1"}, false, "http://minio", "eu-west-1"},
		{"s3://plain-bucket/x", config.S3{Region: "eu-west-1"}, false, "", "eu-west-1"},
		{"s3://dotted.bucket/x", config.S3{Region: "eu-west-1"}, true, "", "eu-west-1"},
		{"s3://Upper_Case/x", config.S3{Region: "eu-west-1"}, true, "", "eu-west-1"},
	}
	for _, c := range cases {
		p, _ := storage.ParsePrefix(c.prefix)
		s, err := New(ctx, p, c.c, 3)
		if err != nil {
			t.Fatal(err)
		}
		o := s.client.Options()
		if o.UsePathStyle != c.path || aws.ToString(o.BaseEndpoint) != c.endpoint || o.Region != c.region {
			t.Errorf("%s %+v: path style %v, endpoint %q, region %q", c.prefix, c.c, o.UsePathStyle, aws.ToString(o.BaseEndpoint), o.Region)
		}
	}
}

// countingListener accepts and counts connections.
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

// Not parallel: it points the metadata service at a local listener.
func TestNewMakesNoNetworkRoundTrip(t *testing.T) {
	endpoint, endpointConns := countingListener(t)
	imds, imdsConns := countingListener(t)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+imds)
	t.Setenv("AWS_DEFAULTS_MODE", "auto") // would probe IMDS if honoured
	p, _ := storage.ParsePrefix("s3://bucket/path")
	for _, c := range []config.S3{
		{Endpoint: "http+path://" + endpoint, AccessKeyID: testKeyID, SecretAccessKey: testSecret},
		{Endpoint: "http+path://" + endpoint, InstanceProfile: true},
		{Region: "us-east-1"},
	} {
		if _, err := New(context.Background(), p, c, 3); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := endpointConns.Load() + imdsConns.Load(); n != 0 {
		t.Errorf("New made %d connections", n)
	}
}
