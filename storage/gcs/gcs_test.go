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
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/internal/faketest"
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
	faketest.Recorder
	srv   *fakestorage.Server
	proxy *httptest.Server
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
	f.proxy = &httptest.Server{
		Listener: l,
		Config:   &http.Server{Handler: f.Handler(rp), ErrorLog: log.New(io.Discard, "", 0)},
	}
	f.proxy.Start()
	t.Cleanup(f.proxy.Close)
	t.Setenv("STORAGE_EMULATOR_HOST", proxyHost)
	return f
}

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

func TestObjectNamesStartWithSlash(t *testing.T) {
	f := newFake(t)
	faketest.Put(t, f.store(t, "gs://"+testBucket+"/prod/db1", 3), "wal_005/000000010000000000000001.lzo", []byte("a"))
	faketest.Put(t, f.store(t, "gs://"+testBucket, 3), "wal_005/000000010000000000000002.lzo", []byte("b"))
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
	if got := faketest.ReadAll(t, s, "wal_005/000000010000000000000003.lzo"); string(got) != "wal-e" {
		t.Errorf("got %q", got)
	}
}

func TestRoundTripUnderPrefixPath(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/prod/db1", 3)
	faketest.RoundTrip(t, s, func() {})
	// The first listing is the one of "wal_005/".
	if l := f.Requests(func(s faketest.Seen) bool { return s.Query.Get("prefix") != "" }); len(l) == 0 || l[0].Query.Get("prefix") != "/prod/db1/wal_005/" {
		t.Errorf("list requests %v, want prefix /prod/db1/wal_005/", l)
	}
}

func TestMissingObjectIsErrNotFound(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	faketest.AssertMissing(t, s, "wal_005/nope")
	// Get and Head once each, and the bucket once.
	if n := f.Count(); n != 3 {
		t.Errorf("%d requests, want 3: not found is not retried", n)
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

func TestPutUnknownSizeUploadsInBoundedChunks(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	const size = 40 << 20
	h := sha256.New()
	g := &faketest.GenReader{Rng: mrand.NewChaCha8([32]byte{9}), Left: size, Received: &f.Received, Sum: h}
	if err := s.Put(context.Background(), "big", g, -1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// One chunk buffered in the writer and one on the wire at most.
	if limit := int64(2*ChunkSize + 1<<20); g.MaxLag > limit {
		t.Errorf("source ran %d MiB ahead of the server, want at most %d MiB", g.MaxLag>>20, limit>>20)
	}
	if n := len(f.Requests(func(s faketest.Seen) bool { return s.Query.Has("upload_id") })); n != 3 {
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

func TestFailedPutCommitsNothing(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	ctx := context.Background()
	// The source fails after more than one chunk has been sent.
	src := io.MultiReader(bytes.NewReader(faketest.RandomBytes(3, 20<<20)), faketest.ReaderFunc(func([]byte) (int, error) {
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
	data := faketest.RandomBytes(4, 100<<10)
	big := faketest.RandomBytes(5, ChunkSize+1<<20)
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
		{"get", isDownload, 4, func() error { return faketest.ReadBack(ctx, s, "k", data) }},
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
		f.SetHook(faketest.FailFirst(3, c.match, unavailable))
		before := f.Count()
		if err := c.op(); err != nil {
			t.Errorf("%s after three 503s: %v", c.name, err)
		}
		if n := f.Count() - before; n != c.want {
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
	small := faketest.RandomBytes(5, 1<<20)
	f.SetHook(faketest.FailFirst(1, isChunk, faketest.DropMidUpload))
	faketest.Put(t, s, "small", small)
	if got := faketest.ReadAll(t, s, "small"); !bytes.Equal(got, small) {
		t.Error("small: content differs")
	}

	// Drop the second chunk of a chunked upload.
	big := faketest.RandomBytes(6, 20<<20)
	var chunks atomic.Int64
	f.SetHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isChunk(r) && chunks.Add(1) == 2 {
			faketest.DropMidUpload(w, r, next)
			return true
		}
		return false
	})
	if err := s.Put(context.Background(), "big", bytes.NewReader(big), -1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := faketest.ReadAll(t, s, "big"); !bytes.Equal(got, big) {
		t.Error("big: content differs")
	}
	if n := chunks.Load(); n != 3 {
		t.Errorf("%d chunk requests, want 2 plus one resend", n)
	}
}

func TestDownloadResumesWithRangeAfterConnectionDrop(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	data := faketest.RandomBytes(7, 3<<20)
	faketest.Put(t, s, "seg", data)
	half := int64(len(data) / 2)
	f.SetHook(faketest.FailFirst(1, isDownload, faketest.CutAt(func(*http.Request) int64 { return half })))
	if got := faketest.ReadAll(t, s, "seg"); !bytes.Equal(got, data) {
		t.Fatal("content differs after resume")
	}
	gets := f.Requests(func(s faketest.Seen) bool {
		return s.Method == http.MethodGet && strings.HasPrefix(s.Path, "/"+testBucket+"/")
	})
	if len(gets) != 2 {
		t.Fatalf("%d downloads, want the cut one and one ranged", len(gets))
	}
	if got, want := gets[1].Header.Get("Range"), fmt.Sprintf("bytes=%d-", half); got != want {
		t.Errorf("resume Range = %q, want %q", got, want)
	}
}

func TestDownloadResumesAfterStall(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3, WithStallTimeout(200*time.Millisecond))
	data := faketest.RandomBytes(8, 1<<20)
	faketest.Put(t, s, "seg", data)
	third := int64(len(data) / 3)
	f.SetHook(faketest.FailFirst(1, isDownload, faketest.StallAt(third)))
	start := time.Now()
	if got := faketest.ReadAll(t, s, "seg"); !bytes.Equal(got, data) {
		t.Fatal("content differs after a stalled download")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stalled download took %v", d)
	}
	gets := f.Requests(func(s faketest.Seen) bool {
		return s.Method == http.MethodGet && strings.HasPrefix(s.Path, "/"+testBucket+"/")
	})
	if len(gets) != 2 || gets[1].Header.Get("Range") != fmt.Sprintf("bytes=%d-", third) {
		t.Errorf("downloads after a stall: %d, last Range %q", len(gets), gets[len(gets)-1].Header.Get("Range"))
	}
}

func TestGivingUpIsOneClearLine(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	ctx := context.Background()
	faketest.Put(t, s, "k", []byte("abc"))
	f.SetHook(faketest.FailFirst(1<<30, func(*http.Request) bool { return true }, unavailable))
	ops := []struct {
		name string
		op   func() error
	}{
		{"put", func() error { return s.Put(ctx, "k", strings.NewReader("abc"), 3, storage.PutOptions{}) }},
		{"put", func() error {
			// A chunked upload whose session starts but whose chunks are refused.
			f.SetHook(faketest.FailFirst(1<<30, isChunk, unavailable))
			defer f.SetHook(faketest.FailFirst(1<<30, func(*http.Request) bool { return true }, unavailable))
			return s.Put(ctx, "k", bytes.NewReader(make([]byte, ChunkSize+1)), -1, storage.PutOptions{})
		}},
		{"get", func() error { _, err := s.Get(ctx, "k"); return err }},
		{"head", func() error { _, err := s.Head(ctx, "k"); return err }},
		{"list", func() error { _, err := s.List(ctx, "wal_005/"); return err }},
		{"delete", func() error { return s.Delete(ctx, "k") }},
	}
	for i, o := range ops {
		before := f.Count()
		err := o.op()
		if err == nil {
			t.Errorf("%s succeeded against a server that always answers 503", o.name)
			continue
		}
		want := 3
		if i == 1 {
			want = 4 // the chunked upload started its session
		}
		if n := f.Count() - before; n != want {
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

func TestNewMakesNoNetworkRoundTrip(t *testing.T) {
	addr, conns := faketest.CountingListener(t)
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
