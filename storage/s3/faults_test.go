package s3

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/internal/faketest"
)

// quick shortens every wait so that hangs end in milliseconds.
var quick = []Option{WithStallTimeout(300 * time.Millisecond), WithRequestLimits(300*time.Millisecond, 2*time.Second, 0)}

func always(func(*http.Request) bool) func(*http.Request) bool {
	return func(*http.Request) bool { return true }
}

func TestUnansweredRequestsAreBoundedRetriedAndReportedAsHangs(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 2, quick...)
	ctx := context.Background()
	faketest.Put(t, s, "k", []byte("abc"))
	host := strings.TrimPrefix(f.srv.URL, "http://")
	ops := []struct {
		name  string
		match func(*http.Request) bool
		op    func() error
	}{
		{"put", isPut, func() error {
			return s.Put(ctx, "k", bytes.NewReader(faketest.RandomBytes(1, 1<<20)), 1<<20, storage.PutOptions{})
		}},
		{"list", isList, func() error { _, err := s.List(ctx, "wal_005/"); return err }},
		{"head", isHead, func() error { _, err := s.Head(ctx, "k"); return err }},
		{"get", isGet, func() error { _, err := s.Get(ctx, "k"); return err }},
		{"delete", isDelete, func() error { return s.Delete(ctx, "k") }},
	}
	for _, o := range ops {
		f.SetHook(faketest.FailFirst(1<<30, o.match, faketest.HangAfterRequest))
		before := f.Count()
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
		if n := f.Count() - before; n != 2 {
			t.Errorf("%s made %d requests, want 2", o.name, n)
		}
		if d > 5*time.Second {
			t.Errorf("%s took %v", o.name, d)
		}
	}
}

func TestAStalledUploadIsGivenUp(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 2, WithStallTimeout(300*time.Millisecond), WithRequestLimits(time.Minute, time.Minute, 0))
	// The server stops reading after 64 KiB: the client's writes block
	// once the socket buffers are full.
	f.SetHook(faketest.FailFirst(1<<30, isPut, faketest.StopReading(64<<10, 2*time.Second)))
	data := faketest.RandomBytes(2, 32<<20)
	start := time.Now()
	err := s.Put(context.Background(), "big", bytes.NewReader(data), int64(len(data)), storage.PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "giving up after 2 attempts: upload to ") || !strings.Contains(err.Error(), "stalled: nothing sent within 300ms") {
		t.Fatalf("stalled upload: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestAHungEndpointEndsTheOperationWhateverTheRetries(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	// WALE_RETRIES=0: retry (practically) forever.
	s := f.store(t, "s3://"+testBucket+"/p", 0, WithStallTimeout(time.Minute), WithRequestLimits(200*time.Millisecond, time.Second, time.Second))
	f.SetHook(faketest.FailFirst(1<<30, always(nil), faketest.HangAfterRequest))
	start := time.Now()
	_, err := s.List(context.Background(), "")
	if err == nil || err.Error() != "s3 list : no progress within 1s" {
		t.Fatalf("list against a hung endpoint: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestDownloadsCutAfterTheHeadersUseUpTheRetries(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	data := faketest.RandomBytes(3, 3<<20)
	faketest.Put(t, s, "seg", data)
	for name, fault := range map[string]faketest.Fault{
		"reset":       faketest.ResetAfterHeaders,
		"a few bytes": faketest.CutAt(func(*http.Request) int64 { return 1000 }),
	} {
		f.SetHook(faketest.FailFirst(1<<30, isGet, fault))
		before := f.Count()
		err := faketest.ReadBack(context.Background(), s, "seg", data)
		if err == nil || !strings.Contains(err.Error(), "s3 get seg: giving up after 3 attempts: ") {
			t.Errorf("%s: %v", name, err)
		}
		if n := f.Count() - before; n != 3 {
			t.Errorf("%s: %d requests, want 3", name, n)
		}
	}
}

func TestAListingWhoseBodyNeverComesIsRetriedAndReported(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	s := f.store(t, "s3://"+testBucket+"/p", 2, quick...)
	faketest.Put(t, s, "wal_005/k", []byte("abc"))
	f.SetHook(faketest.FailFirst(1<<30, isList, faketest.HeadersOnly))
	before := f.Count()
	_, err := s.List(context.Background(), "wal_005/")
	want := "s3 list wal_005/: giving up after 2 attempts: no data from " + strings.TrimPrefix(f.srv.URL, "http://") + " within 300ms"
	if err == nil || err.Error() != want {
		t.Errorf("list = %v, want %q", err, want)
	}
	if n := f.Count() - before; n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}
