package wal

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/storage"
)

// remoteStore is a store that is not local (no Local method): wal-fetch
// takes the path it takes on S3 and GCS. It records each request and the
// most requests it had in flight at once; each takes a moment, as over a
// network.
type remoteStore struct {
	storage.Store
	mu       sync.Mutex
	calls    []string
	inFlight int
	most     int
}

func (r *remoteStore) enter(call string) {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.inFlight++
	r.most = max(r.most, r.inFlight)
	r.mu.Unlock()
	time.Sleep(30 * time.Millisecond)
}

func (r *remoteStore) leave() {
	r.mu.Lock()
	r.inFlight--
	r.mu.Unlock()
}

func (r *remoteStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	r.enter("GET " + key)
	defer r.leave()
	return r.Store.Get(ctx, key)
}

func (r *remoteStore) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	r.enter("LIST " + prefix)
	defer r.leave()
	return r.Store.List(ctx, prefix)
}

func (r *remoteStore) Head(ctx context.Context, key string) (storage.Object, error) {
	r.enter("HEAD " + key)
	defer r.leave()
	return r.Store.Head(ctx, key)
}

func (r *remoteStore) reset() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls, most := r.calls, r.most
	r.calls, r.most = nil, 0
	sort.Strings(calls)
	return calls, most
}

func remote(f *fixture) *remoteStore {
	r := &remoteStore{Store: f.ar.Store}
	f.ar.Store = r
	return r
}

func sameCalls(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if len(got) != len(want) {
		t.Fatalf("%s: requests %q, want %q", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: requests %q, want %q", what, got, want)
		}
	}
}

// TestRemoteFetchOfAnAbsentSegmentListsBothLogIDsAtOnce: on a distant
// store an absent segment costs its GET, then the listings of its log id
// and the next together (they show any copy under another format and
// decide end of archive against gap): two round trips. Gap and end of
// the WAL are judged as before.
func TestRemoteFetchOfAnAbsentSegmentListsBothLogIDsAtOnce(t *testing.T) {
	f := newFixture(t, "lz4")
	f.push(t, seg1, seg2, seg3)
	f.ar.GapGrace = -1
	r := remote(f)
	os.Remove(f.object(seg2))
	r.reset()
	var ge *GapError
	if err := fetchFails(t, f.ar, seg2); !errors.As(err, &ge) || ge.Name != seg2 {
		t.Fatalf("err = %v, want a gap", err)
	}
	calls, most := r.reset()
	sameCalls(t, "gap", calls, "GET wal_005/"+seg2+".lz4", "LIST wal_005/0000000100000000", "LIST wal_005/0000000100000001")
	if most != 2 {
		t.Errorf("at most %d requests in flight; the two listings must go out together", most)
	}

	end := "000000010000000000000004"
	if err := f.ar.Fetch(context.Background(), end, filepath.Join(t.TempDir(), "X"), 0, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("end of WAL: err = %v", err)
	}
	calls, _ = r.reset()
	sameCalls(t, "end of WAL", calls, "GET wal_005/"+end+".lz4", "LIST wal_005/0000000100000000", "LIST wal_005/0000000100000001")

	if err := f.ar.Fetch(context.Background(), seg3, filepath.Join(t.TempDir(), "X"), 0, nil); err != nil {
		t.Fatal(err)
	}
	calls, _ = r.reset()
	sameCalls(t, "stored segment", calls, "GET wal_005/"+seg3+".lz4")
}

// TestRemoteFetchFindsASegmentStoredUnderAnotherFormat: absent under the
// configured format, the copy the listing shows is fetched.
func TestRemoteFetchFindsASegmentStoredUnderAnotherFormat(t *testing.T) {
	f := newFixture(t, "none")
	want := f.push(t, seg1)[seg1]
	r := remote(f)
	lz4, _ := codec.ByName("lz4")
	f.ar.Format = blob.Format{Codec: lz4}
	dest := filepath.Join(t.TempDir(), "X")
	if err := f.ar.Fetch(context.Background(), seg1, dest, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); string(got) != string(want) {
		t.Fatal("wrong content from the copy under another format")
	}
	calls, _ := r.reset()
	sameCalls(t, "other format", calls, "GET wal_005/"+seg1+".lz4", "LIST wal_005/0000000100000000", "LIST wal_005/0000000100000001", "GET wal_005/"+seg1)
}

// TestRemoteFetchOfAnAbsentHistoryFileIsOneRoundTrip: PostgreSQL probes
// for timeline history files that mostly do not exist; the GET and the
// listing for other formats go out together. A stored one is still found.
func TestRemoteFetchOfAnAbsentHistoryFileIsOneRoundTrip(t *testing.T) {
	f := newFixture(t, "lz4")
	r := remote(f)
	if err := f.ar.Fetch(context.Background(), "00000002.history", filepath.Join(t.TempDir(), "X"), 0, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent history file: err = %v", err)
	}
	calls, most := r.reset()
	sameCalls(t, "absent history file", calls, "GET wal_005/00000002.history.lz4", "LIST wal_005/00000002.history")
	if most != 2 {
		t.Errorf("at most %d requests in flight; GET and listing must go out together", most)
	}

	hist := filepath.Join(f.pgwal, "00000002.history")
	content := "1\t0/3000028\tno recovery target specified\n"
	os.WriteFile(hist, []byte(content), 0o600)
	if err := f.ar.Push(context.Background(), hist, 1); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "X")
	if err := f.ar.Fetch(context.Background(), "00000002.history", dest, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); string(got) != content {
		t.Fatalf("history file fetched as %q", got)
	}
}

// TestRemoteFetchOfASegmentExpectedAbsentIsOneRoundTrip: told a lookup a
// moment ago found the segment missing (the end of the archive, which
// PostgreSQL asks for twice at the end of recovery), the GET and the gap
// check's listings go out together; the answers are the same, and a
// segment stored meanwhile is still fetched.
func TestRemoteFetchOfASegmentExpectedAbsentIsOneRoundTrip(t *testing.T) {
	f := newFixture(t, "lz4")
	want := f.push(t, seg1, seg2)
	f.ar.GapGrace = -1
	f.ar.ExpectAbsent = true
	r := remote(f)
	end := "000000010000000000000004"
	if err := f.ar.Fetch(context.Background(), end, filepath.Join(t.TempDir(), "X"), 0, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("end of WAL: err = %v", err)
	}
	calls, most := r.reset()
	sameCalls(t, "end of WAL", calls, "GET wal_005/"+end+".lz4", "LIST wal_005/0000000100000000", "LIST wal_005/0000000100000001")
	if most != 3 {
		t.Errorf("at most %d requests in flight; the GET and both listings must go out together", most)
	}
	os.Remove(f.object(seg1))
	var ge *GapError
	if err := fetchFails(t, f.ar, seg1); !errors.As(err, &ge) || ge.Name != seg1 {
		t.Fatalf("err = %v, want a gap", err)
	}
	r.reset()
	dest := filepath.Join(t.TempDir(), "X")
	if err := f.ar.Fetch(context.Background(), seg2, dest, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); string(got) != string(want[seg2]) {
		t.Fatal("wrong content for a segment stored after all")
	}
}
