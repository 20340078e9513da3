package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const testSysID = 7300000000000000001

// paCluster is a data directory with just what push-ahead reads.
func paCluster(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, sub := range []string{"global", "pg_wal/archive_status"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], testSysID)
	if err := os.WriteFile(filepath.Join(d, "global", "pg_control"), b[:], 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// readySegment writes a segment whose header carries sysid, and its .ready.
func readySegment(t *testing.T, pgdata, name string, sysid uint64, fill byte) string {
	t.Helper()
	b := make([]byte, 8192)
	for i := range b {
		b[i] = fill
	}
	binary.LittleEndian.PutUint16(b[0:], 0xD110)
	binary.LittleEndian.PutUint16(b[2:], 0x0002)
	binary.LittleEndian.PutUint64(b[24:], sysid)
	p := filepath.Join(pgdata, "pg_wal", name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pgdata, "pg_wal", "archive_status", name+".ready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type fakeUploads struct {
	mu    sync.Mutex
	paths []string
	fail  int // fail this many more calls
	block chan struct{}
}

func (f *fakeUploads) upload(ctx context.Context, path string) error {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		return errors.New("store unavailable")
	}
	f.paths = append(f.paths, filepath.Base(path))
	return nil
}

func (f *fakeUploads) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

func startPushAhead(t *testing.T, o PushAheadOptions) *PushAhead {
	t.Helper()
	p := NewPushAhead(o)
	p.register(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func claim(t *testing.T, p *PushAhead, path string) (bool, func(error)) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	durable, release, err := p.Claim(ctx, path, IdentityOf(fi))
	if err != nil {
		t.Fatal(err)
	}
	return durable, release
}

func TestPushAheadUploadsEachReadySegmentOnceOldestFirstAndNeverRenamesStatusFiles(t *testing.T) {
	pg := paCluster(t)
	names := []string{"000000010000000000000003", "000000010000000000000001", "000000010000000000000002"}
	for _, n := range names {
		readySegment(t, pg, n, testSysID, 1)
	}
	os.WriteFile(filepath.Join(pg, "pg_wal", "00000002.history"), []byte("1\t0/3000000\tx\n"), 0o600)
	os.WriteFile(filepath.Join(pg, "pg_wal", "archive_status", "00000002.history.ready"), nil, 0o600)
	f := &fakeUploads{}
	p := startPushAhead(t, PushAheadOptions{PGData: pg, Workers: 1, Upload: f.upload, Poll: 20 * time.Millisecond})
	eventually(t, "three uploads", func() bool { return len(f.got()) == 3 })
	time.Sleep(100 * time.Millisecond) // several more scans
	got := f.got()
	want := []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("uploaded %v, want %v (once each, oldest first, segments only)", got, want)
	}
	for _, n := range append(names, "00000002.history") {
		if _, err := os.Stat(filepath.Join(pg, "pg_wal", "archive_status", n+".ready")); err != nil {
			t.Fatalf("%s.ready was touched: %v", n, err)
		}
	}
	if v := value(p.uploaded); v != 3 {
		t.Fatalf("uploaded_total %v", v)
	}
	if d, _ := claim(t, p, filepath.Join(pg, "pg_wal", want[0])); !d {
		t.Fatal("an uploaded segment was not reported durable")
	}
}

func TestPushAheadNewReadyFileIsNoticedWithoutWaitingForThePoll(t *testing.T) {
	pg := paCluster(t)
	f := &fakeUploads{}
	startPushAhead(t, PushAheadOptions{PGData: pg, Workers: 1, Upload: f.upload, Poll: time.Hour})
	time.Sleep(50 * time.Millisecond) // the watch is set up
	readySegment(t, pg, "000000010000000000000001", testSysID, 1)
	eventually(t, "an upload woken by inotify", func() bool { return len(f.got()) == 1 })
}

func TestPushAheadRecycledFileUnderAnUploadedNameIsNotTakenForIt(t *testing.T) {
	pg := paCluster(t)
	name := "000000010000000000000001"
	path := readySegment(t, pg, name, testSysID, 1)
	f := &fakeUploads{}
	p := startPushAhead(t, PushAheadOptions{PGData: pg, Workers: 1, Upload: f.upload, Poll: time.Hour})
	eventually(t, "the upload", func() bool { return len(f.got()) == 1 })
	// A different file now carries the name (a recycled segment is
	// another inode renamed into place).
	tmp := path + ".tmp"
	os.WriteFile(tmp, make([]byte, 8192), 0o600)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	durable, release := claim(t, p, path)
	if durable {
		t.Fatal("a different file under an uploaded name was reported durable")
	}
	release(errors.New("pushed by the caller and failed"))
}

func TestPushAheadFailedUploadIsRetriedWithBackoffAndCounted(t *testing.T) {
	pg := paCluster(t)
	name := "000000010000000000000001"
	path := readySegment(t, pg, name, testSysID, 1)
	f := &fakeUploads{fail: 2}
	var mu sync.Mutex
	var failures []string
	p := startPushAhead(t, PushAheadOptions{PGData: pg, Workers: 2, Upload: f.upload, Poll: 10 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Failed: func(n string, err error) { mu.Lock(); failures = append(failures, n); mu.Unlock() }})
	eventually(t, "the retried upload", func() bool { return len(f.got()) == 1 })
	if v := value(p.failed); v != 2 {
		t.Fatalf("failed_total %v, want 2", v)
	}
	mu.Lock()
	if len(failures) != 2 {
		t.Fatalf("failures reported %v", failures)
	}
	mu.Unlock()
	if d, _ := claim(t, p, path); !d {
		t.Fatal("the segment is not durable after the retry succeeded")
	}
	time.Sleep(100 * time.Millisecond)
	if v := value(p.failed); v != 2 || len(f.got()) != 1 {
		t.Fatalf("after success: failed_total %v, uploads %v", v, f.got())
	}
}

func TestPushAheadBackoffGrowsToItsCap(t *testing.T) {
	p := NewPushAhead(PushAheadOptions{MinBackoff: time.Second, MaxBackoff: 10 * time.Second})
	var got []time.Duration
	for i := 1; i <= 6; i++ {
		got = append(got, p.backoff(i))
	}
	if fmt.Sprint(got) != "[1s 2s 4s 8s 10s 10s]" {
		t.Fatalf("backoff %v", got)
	}
}

func TestPushAheadNeverUploadsAnotherClustersSegment(t *testing.T) {
	pg := paCluster(t)
	path := readySegment(t, pg, "000000010000000000000001", testSysID+1, 1)
	readySegment(t, pg, "000000010000000000000002", testSysID, 1)
	f := &fakeUploads{}
	p := startPushAhead(t, PushAheadOptions{PGData: pg, Workers: 1, Upload: f.upload, Poll: 10 * time.Millisecond})
	eventually(t, "our own segment", func() bool { return len(f.got()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if got := f.got(); len(got) != 1 || got[0] != "000000010000000000000002" {
		t.Fatalf("uploaded %v", got)
	}
	if v := value(p.failed); v != 0 {
		t.Fatalf("a foreign segment counted as a failure: %v", v)
	}
	durable, release := claim(t, p, path)
	if durable {
		t.Fatal("a foreign segment was reported durable")
	}
	release(errors.New("left to the caller"))
}

func TestPushAheadClaimWaitsForTheUploadInFlight(t *testing.T) {
	pg := paCluster(t)
	path := readySegment(t, pg, "000000010000000000000001", testSysID, 1)
	f := &fakeUploads{block: make(chan struct{})}
	p := startPushAhead(t, PushAheadOptions{PGData: pg, Workers: 1, Upload: f.upload, Poll: 10 * time.Millisecond})
	eventually(t, "the upload in flight", func() bool {
		return p.count(paInFlight) == 1
	})
	type res struct{ durable bool }
	out := make(chan res, 1)
	go func() { d, _ := claim(t, p, path); out <- res{d} }()
	select {
	case <-out:
		t.Fatal("Claim answered while the upload was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(f.block)
	select {
	case r := <-out:
		if !r.durable {
			t.Fatal("not durable after the upload in flight succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Claim did not return")
	}
}

func TestPushAheadClaimedSegmentIsLeftToTheCallerAndItsSuccessRemembered(t *testing.T) {
	pg := paCluster(t)
	path := readySegment(t, pg, "000000010000000000000001", testSysID, 1)
	f := &fakeUploads{}
	p := NewPushAhead(PushAheadOptions{PGData: pg, Workers: 1, Upload: f.upload})
	durable, release := claim(t, p, path)
	if durable {
		t.Fatal("unknown segment reported durable")
	}
	p.scan() // the caller holds it: not queued
	if n := p.count(paQueued); n != 0 {
		t.Fatalf("%d queued while claimed", n)
	}
	release(nil)
	if d, _ := claim(t, p, path); !d {
		t.Fatal("the caller's own success was not remembered")
	}
	// Once PostgreSQL marks it done, the record goes.
	os.Rename(filepath.Join(pg, "pg_wal", "archive_status", "000000010000000000000001.ready"),
		filepath.Join(pg, "pg_wal", "archive_status", "000000010000000000000001.done"))
	p.scan()
	if len(p.recs) != 0 {
		t.Fatalf("records left after .done: %d", len(p.recs))
	}
}

func TestPushAheadQueueAndRecordsStayBounded(t *testing.T) {
	pg := paCluster(t)
	for i := 1; i <= 40; i++ {
		readySegment(t, pg, fmt.Sprintf("0000000100000000%08X", i), testSysID, 1)
	}
	f := &fakeUploads{block: make(chan struct{})}
	p := NewPushAhead(PushAheadOptions{PGData: pg, Workers: 2, Queue: 5, Records: 12, Upload: f.upload})
	for i := 0; i < 5; i++ {
		p.scan()
	}
	if q, n := p.count(paQueued), len(p.recs); q != 5 || n != 5 {
		t.Fatalf("queued %d, records %d; want 5 and 5", q, n)
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
