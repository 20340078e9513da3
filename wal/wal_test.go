package wal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/file"
	"github.com/walden-pg/walden/walelog"
)

type fixture struct {
	ar     *Archive
	store  string
	pgwal  string
	logbuf *bytes.Buffer
}

func newFixture(t *testing.T, compression string) *fixture {
	t.Helper()
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	if err := os.Mkdir(store, 0o755); err != nil { // the store's root is the operator's to create
		t.Fatal(err)
	}
	p, err := storage.ParsePrefix("file://localhost" + store)
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.ByName(compression)
	if err != nil {
		t.Fatal(err)
	}
	pgwal := filepath.Join(dir, "pg_wal")
	if err := os.MkdirAll(filepath.Join(pgwal, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := walelog.New(walelog.Options{Stderr: &buf, Destinations: []string{"stderr"}})
	return &fixture{
		ar:     &Archive{Store: file.New(store), Prefix: p, Format: blob.Format{Codec: c}, Log: log, Workers: 2},
		store:  store,
		pgwal:  pgwal,
		logbuf: &buf,
	}
}

// testSysID is the system identifier of the synthetic segments.
const testSysID = 7300000000000000001

// makeSegment builds a 16 MiB segment whose first page header is valid for
// name: part random, part zeros, like a real one.
func makeSegment(t *testing.T, name string, sysid uint64) []byte {
	t.Helper()
	s, err := ParseSegment(name)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 16<<20)
	rand.Read(data[:1<<20])
	le := binary.LittleEndian
	le.PutUint16(data[0:], 0xD110)
	le.PutUint16(data[2:], xlpLongHeader)
	le.PutUint32(data[4:], s.TLI)
	le.PutUint64(data[8:], s.StartLSN(16<<20))
	le.PutUint32(data[16:], 0)
	le.PutUint64(data[24:], sysid)
	le.PutUint32(data[32:], 16<<20)
	le.PutUint32(data[36:], 8192)
	return data
}

func (f *fixture) segment(t *testing.T, name string, ready bool) []byte {
	t.Helper()
	data := makeSegment(t, name, testSysID)
	if err := os.WriteFile(filepath.Join(f.pgwal, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if ready {
		os.WriteFile(filepath.Join(f.pgwal, "archive_status", name+".ready"), nil, 0o600)
	}
	return data
}

func TestPushThenFetchRestoresIdenticalBytesForEveryCodec(t *testing.T) {
	for _, c := range []string{"lz4", "zstd", "lzo", "none"} {
		t.Run(c, func(t *testing.T) {
			f := newFixture(t, c)
			data := f.segment(t, "000000010000000000000001", true)
			if err := f.ar.Push(context.Background(), filepath.Join(f.pgwal, "000000010000000000000001"), 1); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(f.store, "wal_005", "000000010000000000000001"+f.ar.Format.Ext())); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
			if err := f.ar.Fetch(context.Background(), "000000010000000000000001", dest, 0, nil); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(dest)
			if !bytes.Equal(got, data) {
				t.Fatal("fetched bytes differ")
			}
			if !strings.Contains(f.logbuf.String(), "state=complete") {
				t.Fatalf("log: %s", f.logbuf)
			}
		})
	}
}

func TestPushWithPoolMarksOnlyOtherSegmentsDone(t *testing.T) {
	f := newFixture(t, "lz4")
	for _, n := range []string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003"} {
		f.segment(t, n, true)
	}
	if err := f.ar.Push(context.Background(), filepath.Join(f.pgwal, "000000010000000000000001"), 32); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(f.pgwal, "archive_status")
	if _, err := os.Stat(filepath.Join(st, "000000010000000000000001.ready")); err != nil {
		t.Fatal("the named segment's .ready was touched")
	}
	for _, n := range []string{"000000010000000000000002", "000000010000000000000003"} {
		if _, err := os.Stat(filepath.Join(st, n+".done")); err != nil {
			t.Fatalf("%s not marked done", n)
		}
		if _, err := os.Stat(filepath.Join(f.store, "wal_005", n+".lz4")); err != nil {
			t.Fatalf("%s not uploaded", n)
		}
	}
}

func TestPushOfIdenticalExistingObjectSucceedsAndDifferentContentFails(t *testing.T) {
	f := newFixture(t, "lz4")
	seg := filepath.Join(f.pgwal, "000000010000000000000001")
	f.segment(t, "000000010000000000000001", false)
	if err := f.ar.Push(context.Background(), seg, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.ar.Push(context.Background(), seg, 1); err != nil {
		t.Fatalf("re-push of identical content: %v", err)
	}
	f.segment(t, "000000010000000000000001", false) // new random content
	err := f.ar.Push(context.Background(), seg, 1)
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a conflict", err)
	}
}

func TestPushOfMissingFileIsMissingFileError(t *testing.T) {
	f := newFixture(t, "lz4")
	err := f.ar.Push(context.Background(), filepath.Join(f.pgwal, "000000010000000000000009"), 1)
	var mf *MissingFileError
	if !errors.As(err, &mf) {
		t.Fatalf("err = %v", err)
	}
}

func TestFetchOfMissingSegmentLeavesNothingAtDest(t *testing.T) {
	f := newFixture(t, "lz4")
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	err := f.ar.Fetch(context.Background(), "000000010000000000000007", dest, 0, nil)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("something was left at dest")
	}
	if !strings.Contains(f.logbuf.String(), "could no longer locate object while performing wal restore") ||
		!strings.Contains(f.logbuf.String(), "MSG: complete wal restore") {
		t.Fatalf("log: %s", f.logbuf)
	}
}

func TestFetchOfCorruptObjectFailsAndLeavesNothingAtDest(t *testing.T) {
	f := newFixture(t, "lz4")
	f.segment(t, "000000010000000000000001", false)
	if err := f.ar.Push(context.Background(), filepath.Join(f.pgwal, "000000010000000000000001"), 1); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(f.store, "wal_005", "000000010000000000000001.lz4")
	b, _ := os.ReadFile(obj)
	os.WriteFile(obj, b[:len(b)/2], 0o644)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if err := f.ar.Fetch(context.Background(), "000000010000000000000001", dest, 0, nil); err == nil {
		t.Fatal("truncated object fetched without error")
	}
	if ents, _ := os.ReadDir(filepath.Dir(dest)); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestFetchFindsObjectsWrittenWithAnotherCodec(t *testing.T) {
	f := newFixture(t, "zstd")
	data := f.segment(t, "000000010000000000000001", false)
	if err := f.ar.Push(context.Background(), filepath.Join(f.pgwal, "000000010000000000000001"), 1); err != nil {
		t.Fatal(err)
	}
	lz4, _ := codec.ByName("lz4")
	f.ar.Format.Codec = lz4
	dest := filepath.Join(t.TempDir(), "X")
	if err := f.ar.Fetch(context.Background(), "000000010000000000000001", dest, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}

func TestPrefetchedSegmentIsPromotedAndStaleOnesCleared(t *testing.T) {
	f := newFixture(t, "lz4")
	for _, n := range []string{"000000010000000000000001", "000000010000000000000002"} {
		f.segment(t, n, false)
		if err := f.ar.Push(context.Background(), filepath.Join(f.pgwal, n), 1); err != nil {
			t.Fatal(err)
		}
	}
	// Prefetch 02 as a detached helper would, and leave a stale one behind.
	if err := f.ar.Prefetch(context.Background(), f.pgwal, "000000010000000000000002"); err != nil {
		t.Fatal(err)
	}
	pf := f.ar.newPrefetchDirs(f.pgwal).dir
	os.WriteFile(filepath.Join(pf, "0000000100000000000000AA"), []byte("stale"), 0o600)
	var spawned []string
	spawn := func(base, seg string) error { spawned = append(spawned, seg); return nil }
	dest := filepath.Join(f.pgwal, "RECOVERYXLOG")
	if err := f.ar.Fetch(context.Background(), "000000010000000000000002", dest, 2, spawn); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.logbuf.String(), "promoted prefetched wal segment") {
		t.Fatalf("not promoted: %s", f.logbuf)
	}
	if len(spawned) != 2 || spawned[0] != "000000010000000000000003" {
		t.Fatalf("spawned %v", spawned)
	}
	if _, err := os.Stat(filepath.Join(pf, "0000000100000000000000AA")); !os.IsNotExist(err) {
		t.Fatal("stale prefetched file kept")
	}
	// A second fetch does not spawn what is already running.
	spawned = nil
	f.ar.Fetch(context.Background(), "000000010000000000000001", filepath.Join(f.pgwal, "X"), 2, spawn)
	for _, s := range spawned {
		if s == "000000010000000000000003" {
			t.Fatal("respawned a running prefetch")
		}
	}
}
