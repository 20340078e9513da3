package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/internal/faketest"
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
	faketest.Recorder
	backend *s3mem.Backend
	srv     *httptest.Server
}

func newFake(t *testing.T) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New()}
	if err := f.backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	inner := gofakes3.New(f.backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	f.srv = httptest.NewUnstartedServer(f.Handler(inner))
	// gofakes3 keeps writing after a fault hijacked its connection.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
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

func objectKey(r *http.Request) string { return keyOf(r.URL.Path) }

// key is the object key of a recorded request.
func key(s faketest.Seen) string { return keyOf(s.Path) }

func keyOf(path string) string {
	return strings.TrimPrefix(strings.TrimPrefix(path, "/"+testBucket), "/")
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

// slowDown is S3's throttling answer.
func slowDown(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>FAKE</RequestId></Error>`)
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
	faketest.RoundTrip(t, s, func() {
		// Physical keys are path_prefix + key, without a leading slash.
		if !f.physicalExists("prod/db1/wal_005/000000010000000000000001.lzo") {
			t.Fatal("object not stored under prod/db1/")
		}
	})
}

func TestPhysicalKeysCollapseRepeatedSlashes(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"//prod//db1/", 3)
	faketest.Put(t, s, "wal_005/x", []byte("x"))
	if !f.physicalExists("prod/db1/wal_005/x") {
		t.Fatalf("stored as %v, want prod/db1/wal_005/x", f.Requests(func(s faketest.Seen) bool { return s.Method == http.MethodPut }))
	}
	l, err := s.List(context.Background(), "wal_005/")
	if err != nil || len(l) != 1 || l[0].Key != "wal_005/x" {
		t.Errorf("list = %v, %v", l, err)
	}
	if got := faketest.ReadAll(t, s, "wal_005/x"); string(got) != "x" {
		t.Errorf("got %q", got)
	}
}

func TestMissingObjectIsErrNotFound(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	faketest.AssertMissing(t, s, "wal_005/nope")
	// Not found is an answer, not a failure: it is not retried.
	if n := len(f.Requests(func(s faketest.Seen) bool { return s.Method == http.MethodGet })); n != 1 {
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
	faketest.Put(t, s, "b.lzo", []byte("data"))
	puts := f.Requests(func(s faketest.Seen) bool { return s.Method == http.MethodPut })
	if len(puts) != 2 {
		t.Fatalf("%d PUTs, want 2", len(puts))
	}
	for i, wantCT := range []string{"application/json", "application/octet-stream"} {
		h := puts[i].Header
		if got := h.Get("X-Amz-Storage-Class"); got != "STANDARD_IA" {
			t.Errorf("%s: x-amz-storage-class = %q", key(puts[i]), got)
		}
		if got := h.Get("X-Amz-Server-Side-Encryption"); got != "AES256" {
			t.Errorf("%s: x-amz-server-side-encryption = %q", key(puts[i]), got)
		}
		if got := h.Get("Content-Type"); got != wantCT {
			t.Errorf("%s: Content-Type = %q, want %q", key(puts[i]), got, wantCT)
		}
	}
	// gofakes3 ignores SSE but must still accept and serve the object.
	if got := faketest.ReadAll(t, s, "b.lzo"); string(got) != "data" {
		t.Errorf("got %q", got)
	}
}

func TestPutUnknownSizeStreamsMultipartWithBoundedMemory(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	const size = 100 << 20
	h := sha256.New()
	g := &faketest.GenReader{Rng: rand.NewChaCha8([32]byte{7}), Left: size, Received: &f.Received, Sum: h}
	if err := s.Put(context.Background(), "big", g, -1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// The source may run ahead of the server by the parts the uploader
	// holds (PartConcurrency in flight, one filling, one spare), never by
	// the whole object.
	t.Logf("the source ran at most %d MiB ahead of the server", g.MaxLag>>20)
	if limit := int64(PartConcurrency+2) * PartSize; g.MaxLag > limit {
		t.Errorf("source ran %d MiB ahead of the server, want at most %d MiB", g.MaxLag>>20, limit>>20)
	}
	if n := len(f.Requests(func(s faketest.Seen) bool { return s.Method == http.MethodPut && s.Query["partNumber"] == nil })); n != 0 {
		t.Errorf("%d single PUTs, want none", n)
	}
	if n := len(f.Requests(func(s faketest.Seen) bool { return s.Query["partNumber"] != nil })); n != 7 {
		t.Errorf("%d parts, want 7 of 16 MiB", n)
	}
	create := f.Requests(func(s faketest.Seen) bool { return s.Method == http.MethodPost && s.Query["uploads"] != nil })
	if len(create) != 1 || create[0].Header.Get("X-Amz-Storage-Class") != "STANDARD_IA" ||
		create[0].Header.Get("X-Amz-Server-Side-Encryption") != "AES256" {
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
	if len(f.Requests(func(s faketest.Seen) bool { return s.Method == http.MethodDelete && s.Query["uploadId"] != nil })) != 1 {
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
	f.SetHook(faketest.FailFirst(1<<30, isPart, slowDown))
	s := f.store(t, "s3://"+testBucket+"/p", 2)
	err := s.Put(context.Background(), "big", io.LimitReader(rand.NewChaCha8([32]byte{}), 20<<20), -1, storage.PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "s3 put big: giving up after 2 attempts") {
		t.Fatalf("err = %v", err)
	}
	if f.physicalExists("p/big") {
		t.Error("object visible after a failed multipart upload")
	}
	if len(f.Requests(func(s faketest.Seen) bool { return s.Method == http.MethodDelete && s.Query["uploadId"] != nil })) == 0 {
		t.Error("no AbortMultipartUpload")
	}
	f.SetHook(nil)
	assertNoPendingUploads(t, s)
}

func TestCanceledMultipartUploadIsStillAborted(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once the first part is on its way.
	src := io.MultiReader(io.LimitReader(rand.NewChaCha8([32]byte{}), 20<<20), faketest.ReaderFunc(func([]byte) (int, error) {
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

func TestSlowDownIsRetriedForEveryOperation(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 5)
	ctx := context.Background()
	data := faketest.RandomBytes(3, 100<<10)
	checks := []struct {
		name  string
		match func(*http.Request) bool
		op    func() error
	}{
		{"put", isPut, func() error { return s.Put(ctx, "k", bytes.NewReader(data), int64(len(data)), storage.PutOptions{}) }},
		{"get", isGet, func() error { return faketest.ReadBack(ctx, s, "k", data) }},
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
		f.SetHook(faketest.FailFirst(3, c.match, slowDown))
		before := f.Count()
		if err := c.op(); err != nil {
			t.Errorf("%s after three SlowDowns: %v", c.name, err)
		}
		if n := f.Count() - before; n != 4 {
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
	small := faketest.RandomBytes(4, 1<<20)
	f.SetHook(faketest.FailFirst(1, isPut, faketest.DropMidUpload))
	faketest.Put(t, s, "small", small)
	if got := faketest.ReadAll(t, s, "small"); !bytes.Equal(got, small) {
		t.Error("single put: content differs")
	}
	if n := len(f.Requests(func(s faketest.Seen) bool { return s.Method == http.MethodPut && key(s) == "p/small" })); n != 2 {
		t.Errorf("single put took %d requests, want 2", n)
	}

	big := faketest.RandomBytes(5, 20<<20)
	f.SetHook(faketest.FailFirst(1, isPart, faketest.DropMidUpload))
	if err := s.Put(context.Background(), "big", bytes.NewReader(big), -1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := faketest.ReadAll(t, s, "big"); !bytes.Equal(got, big) {
		t.Error("multipart: content differs")
	}
	if n := len(f.Requests(func(s faketest.Seen) bool { return s.Query["partNumber"] != nil })); n != 3 {
		t.Errorf("multipart put sent %d parts, want 2 plus one resend", n)
	}
}

func TestDownloadResumesWithRangeAfterConnectionDrop(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	data := faketest.RandomBytes(6, 3<<20)
	faketest.Put(t, s, "seg", data)
	half := int64(len(data) / 2)
	f.SetHook(faketest.FailFirst(1, isGet, faketest.CutAt(func(*http.Request) int64 { return half })))
	if got := faketest.ReadAll(t, s, "seg"); !bytes.Equal(got, data) {
		t.Fatal("content differs after resume")
	}
	gets := f.Requests(func(s faketest.Seen) bool { return s.Method == http.MethodGet && key(s) == "p/seg" })
	if len(gets) != 2 {
		t.Fatalf("%d GETs, want the cut one and one ranged", len(gets))
	}
	last := gets[1]
	if got, want := last.Header.Get("Range"), fmt.Sprintf("bytes=%d-", half); got != want {
		t.Errorf("resume Range = %q, want %q", got, want)
	}
	if last.Header.Get("If-Match") == "" {
		t.Error("resume does not pin the ETag with If-Match")
	}
}

func TestDownloadResumesAfterStall(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3, WithStallTimeout(200*time.Millisecond))
	data := faketest.RandomBytes(7, 1<<20)
	faketest.Put(t, s, "seg", data)
	f.SetHook(faketest.FailFirst(1, isGet, faketest.StallAt(int64(len(data)/3))))
	start := time.Now()
	if got := faketest.ReadAll(t, s, "seg"); !bytes.Equal(got, data) {
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
	faketest.Put(t, s, "k", []byte("abc"))
	f.SetHook(faketest.FailFirst(1<<30, func(r *http.Request) bool { return true }, slowDown))
	before := f.Count()
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
	if n := f.Count() - before; n != 3*len(ops) {
		t.Errorf("%d requests for %d operations, want 3 attempts each", n, len(ops))
	}
	if err := ops["put"](); !strings.HasPrefix(err.Error(), "s3 put k: giving up after 3 attempts: ") {
		t.Errorf("put error = %q", err)
	}

	// A download whose connection always breaks before the body gives up
	// the same way.
	f.SetHook(faketest.FailFirst(1<<30, isGet, faketest.CutAt(func(*http.Request) int64 { return 0 })))
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
	f.SetHook(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
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
	if n := len(f.Requests(func(s faketest.Seen) bool { return s.Query["delete"] != nil })); n != 3 {
		t.Errorf("%d DeleteObjects requests, want 3", n)
	}
}

func TestDeleteManyReportsPerKeyFailures(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	// Answer DeleteObjects ourselves: deny keys containing "keep".
	f.SetHook(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
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

// Not parallel: it points the metadata service at a local listener.
func TestNewMakesNoNetworkRoundTrip(t *testing.T) {
	endpoint, endpointConns := faketest.CountingListener(t)
	imds, imdsConns := faketest.CountingListener(t)
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
