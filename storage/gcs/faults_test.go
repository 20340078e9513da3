package gcs

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/internal/faketest"
)

// noSession answers a resumable-upload start 200 without the Location
// header that names the session.
func noSession(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
}

func count(f *fakeGCS, match func(*http.Request) bool) func() int {
	before := len(f.Requests(func(faketest.Seen) bool { return true }))
	return func() int { return len(f.Requests(func(faketest.Seen) bool { return true })) - before }
}

func TestOneResetOnAnUploadIsRetried(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	small := faketest.RandomBytes(1, 300<<10) // one request (multipart upload)
	big := faketest.RandomBytes(2, ChunkSize+100)
	for _, c := range []struct {
		name  string
		data  []byte
		size  int64
		fault faketest.Fault
	}{
		{"single request, reset before headers", small, int64(len(small)), faketest.ResetBeforeHeaders},
		{"single request, reset mid-body", small, int64(len(small)), faketest.ResetMidUpload},
		{"single request, reset after the response headers", small, int64(len(small)), faketest.ResetAfterHeaders},
		{"single request, unknown size, reset after the response headers", small, -1, faketest.ResetAfterHeaders},
		{"session start, reset before headers", big, -1, faketest.ResetBeforeHeaders},
		{"session start, reset after the response headers", big, -1, faketest.ResetAfterHeaders},
		{"session start answered without a session", big, -1, noSession},
	} {
		f.SetHook(faketest.FailFirst(1, isUploadStart, c.fault))
		if err := s.Put(context.Background(), "k", bytes.NewReader(c.data), c.size, storage.PutOptions{}); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := faketest.ReadAll(t, s, "k"); !bytes.Equal(got, c.data) {
			t.Errorf("%s: content differs", c.name)
		}
	}
}

func TestUploadsThatKeepFailingGiveUpAfterTheAttemptsMade(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	small := faketest.RandomBytes(1, 300<<10)
	big := faketest.RandomBytes(2, ChunkSize+100)
	for _, c := range []struct {
		name  string
		data  []byte
		fault faketest.Fault
		cause string
	}{
		{"reset after the response headers", small, faketest.ResetAfterHeaders, "connection reset by peer"},
		{"session start without a session", big, noSession, `Post "": unsupported protocol scheme ""`},
	} {
		f.SetHook(faketest.FailFirst(1<<30, isUploadStart, c.fault))
		n := count(f, isUploadStart)
		err := s.Put(context.Background(), "k", bytes.NewReader(c.data), -1, storage.PutOptions{})
		if err == nil || !strings.HasPrefix(err.Error(), "gcs put k: giving up after 3 attempts: ") || !strings.Contains(err.Error(), c.cause) {
			t.Errorf("%s: %v", c.name, err)
		}
		if got := n(); got != 3 {
			t.Errorf("%s: %d requests, want 3", c.name, got)
		}
	}
}

func TestUnansweredRequestsAreBoundedRetriedAndReportedAsHangs(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 2, WithStallTimeout(300*time.Millisecond), WithRequestLimits(300*time.Millisecond, 2*time.Second, 0))
	ctx := context.Background()
	faketest.Put(t, s, "k", []byte("abc"))
	host := f.proxy.Listener.Addr().String()
	ops := []struct {
		name  string
		match func(*http.Request) bool
		op    func() error
	}{
		{"put", isUploadStart, func() error {
			return s.Put(ctx, "k", bytes.NewReader(faketest.RandomBytes(1, 1<<20)), 1<<20, storage.PutOptions{})
		}},
		{"list", isList, func() error { _, err := s.List(ctx, "wal_005/"); return err }},
		{"head", isAttrs, func() error { _, err := s.Head(ctx, "k"); return err }},
		{"get", isDownload, func() error { _, err := s.Get(ctx, "k"); return err }},
		{"delete", isDelete, func() error { return s.Delete(ctx, "k") }},
	}
	for _, o := range ops {
		f.SetHook(faketest.FailFirst(1<<30, o.match, faketest.HangAfterRequest))
		n := count(f, o.match)
		start := time.Now()
		err := o.op()
		d := time.Since(start)
		if err == nil {
			t.Errorf("%s succeeded against a server that never answers", o.name)
			continue
		}
		want := "giving up after 2 attempts: no response from " + host + " within "
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %q does not say %q", o.name, err, want)
		}
		if got := n(); got != 2 {
			t.Errorf("%s made %d requests, want 2", o.name, got)
		}
		if d > 5*time.Second {
			t.Errorf("%s took %v", o.name, d)
		}
	}
}

func TestAHungEndpointEndsTheOperationWhateverTheRetries(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 0, WithRequestLimits(200*time.Millisecond, time.Second, time.Second))
	f.SetHook(faketest.FailFirst(1<<30, func(*http.Request) bool { return true }, faketest.HangAfterRequest))
	start := time.Now()
	err := s.Put(context.Background(), "k", strings.NewReader("abc"), 3, storage.PutOptions{})
	if err == nil || err.Error() != "gcs put k: no progress within 1s" {
		t.Fatalf("put against a hung endpoint: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestDownloadsCutAfterTheHeadersUseUpTheRetries(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3, WithStallTimeout(time.Second))
	data := faketest.RandomBytes(3, 3<<20)
	faketest.Put(t, s, "seg", data)
	for name, fault := range map[string]faketest.Fault{
		"reset":       faketest.ResetAfterHeaders,
		"closed":      faketest.CutAt(func(*http.Request) int64 { return 0 }),
		"a few bytes": faketest.CutAt(func(*http.Request) int64 { return 1000 }),
	} {
		f.SetHook(faketest.FailFirst(1<<30, isDownload, fault))
		n := count(f, isDownload)
		start := time.Now()
		err := faketest.ReadBack(context.Background(), s, "seg", data)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %v", name, d)
		}
		if err == nil || !strings.HasPrefix(err.Error(), "gcs get seg: giving up after 3 attempts: ") {
			t.Errorf("%s: %v", name, err)
		}
		if got := n(); got != 3 {
			t.Errorf("%s: %d requests, want 3", name, got)
		}
	}
}

func TestAHungEndpointEndsEveryOperation(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 0, WithRequestLimits(200*time.Millisecond, time.Second, time.Second))
	f.SetHook(faketest.FailFirst(1<<30, func(*http.Request) bool { return true }, faketest.HangAfterRequest))
	ctx := context.Background()
	for name, op := range map[string]func() error{
		"head":   func() error { _, err := s.Head(ctx, "k"); return err },
		"list":   func() error { _, err := s.List(ctx, "k"); return err },
		"delete": func() error { return s.Delete(ctx, "k") },
	} {
		start := time.Now()
		err := op()
		if err == nil || !strings.HasSuffix(err.Error(), ": no progress within 1s") {
			t.Errorf("%s against a hung endpoint: %v", name, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s took %v", name, d)
		}
	}
}

func TestAListingWhoseBodyNeverComesIsRetriedAndReported(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 2, WithStallTimeout(300*time.Millisecond), WithRequestLimits(300*time.Millisecond, 2*time.Second, 0))
	faketest.Put(t, s, "wal_005/k", []byte("abc"))
	f.SetHook(faketest.FailFirst(1<<30, isList, faketest.HeadersOnly))
	n := count(f, isList)
	_, err := s.List(context.Background(), "wal_005/")
	want := "gcs list wal_005/: giving up after 2 attempts: no data from " + f.proxy.Listener.Addr().String() + " within 300ms"
	if err == nil || err.Error() != want {
		t.Errorf("list = %v, want %q", err, want)
	}
	if got := n(); got != 2 {
		t.Errorf("%d requests, want 2", got)
	}
}
