package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/file"
)

const (
	seg1 = "000000010000000000000001"
	seg2 = "000000010000000000000002"
	seg3 = "000000010000000000000003"
)

func (f *fixture) push(t *testing.T, names ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, n := range names {
		out[n] = f.segment(t, n, false)
		if err := f.ar.Push(context.Background(), filepath.Join(f.pgwal, n), 1); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func (f *fixture) object(name string) string {
	return filepath.Join(f.store, "wal_005", name+f.ar.Format.Ext())
}

// fetchFails asserts that fetching name fails with something other than
// "not found" and leaves nothing in the destination directory.
func fetchFails(t *testing.T, ar *Archive, name string) error {
	t.Helper()
	dir := t.TempDir()
	err := ar.Fetch(context.Background(), name, filepath.Join(dir, "RECOVERYXLOG"), 0, nil)
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("fetch of %s: err = %v, want a failure other than not-found", name, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
	return err
}

func TestFetchOfZeroLengthObjectFailsForEveryCodec(t *testing.T) {
	for _, c := range []string{"lz4", "zstd", "lzo", "none"} {
		t.Run(c, func(t *testing.T) {
			f := newFixture(t, c)
			f.push(t, seg1)
			os.WriteFile(f.object(seg1), nil, 0o644)
			if err := fetchFails(t, f.ar, seg1); !IsHeaderError(err) && !strings.Contains(err.Error(), c) {
				t.Logf("err = %v", err)
			}
		})
	}
}

func TestFetchWithoutCompressionRefusesTruncatedOrAlteredSegments(t *testing.T) {
	f := newFixture(t, "none")
	f.push(t, seg1)
	orig, _ := os.ReadFile(f.object(seg1))
	for _, tc := range []struct {
		what string
		b    []byte
	}{
		{"truncated", orig[:len(orig)-1]},
		{"half", orig[:len(orig)/2]},
		{"5 bytes", orig[:5]},
		{"flipped page address", func() []byte { b := bytes.Clone(orig); b[9] ^= 1; return b }()},
		{"flipped magic", func() []byte { b := bytes.Clone(orig); b[1] ^= 0x40; return b }()},
		{"one byte longer", append(bytes.Clone(orig), 0)},
	} {
		os.WriteFile(f.object(seg1), tc.b, 0o644)
		if err := fetchFails(t, f.ar, seg1); !IsHeaderError(err) {
			t.Errorf("%s: err = %v, want a header error", tc.what, err)
		}
	}
}

func TestFetchRefusesSegmentOfAnotherCluster(t *testing.T) {
	f := newFixture(t, "lz4")
	f.push(t, seg1)
	data := t.TempDir()
	os.MkdirAll(filepath.Join(data, "global"), 0o700)
	os.MkdirAll(filepath.Join(data, "pg_wal"), 0o700)
	ctl := make([]byte, 8192)
	binary.LittleEndian.PutUint64(ctl, testSysID+1)
	os.WriteFile(filepath.Join(data, "global", "pg_control"), ctl, 0o600)
	dest := filepath.Join(data, "pg_wal", "RECOVERYXLOG")
	err := f.ar.Fetch(context.Background(), seg1, dest, 0, nil)
	var se *SystemIDError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a system identifier mismatch", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("WAL of another cluster was written")
	}
	// The cluster's own WAL is served.
	binary.LittleEndian.PutUint64(ctl, testSysID)
	os.WriteFile(filepath.Join(data, "global", "pg_control"), ctl, 0o600)
	if err := f.ar.Fetch(context.Background(), seg1, dest, 0, nil); err != nil {
		t.Fatal(err)
	}
}

func newEntity(t *testing.T) *openpgp.Entity {
	e, err := openpgp.NewEntity("wal test", "", "wal@walden.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type entityCrypter struct{ e *openpgp.Entity }

func (p entityCrypter) Encrypt(w io.Writer) (io.WriteCloser, error) {
	return openpgp.Encrypt(w, []*openpgp.Entity{p.e}, nil, &openpgp.FileHints{IsBinary: true}, nil)
}

func (p entityCrypter) Decrypt(r io.Reader) (io.ReadCloser, error) {
	md, err := openpgp.ReadMessage(r, openpgp.EntityList{p.e}, nil, nil)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(md.UnverifiedBody), nil
}

func TestFetchRefusesPlaintextWhenEncryptionIsConfiguredUnlessAllowed(t *testing.T) {
	f := newFixture(t, "lz4")
	f.push(t, seg1) // plaintext
	os.WriteFile(f.object(seg2), bytes.Repeat([]byte{0x5a, 0x13, 0x77}, 1000), 0o644)
	cr := entityCrypter{newEntity(t)}
	f.ar.Crypt, f.ar.RequireEncrypted = cr, true
	var pe *PlaintextError
	if err := fetchFails(t, f.ar, seg1); !errors.As(err, &pe) {
		t.Fatalf("plaintext object: err = %v", err)
	}
	if err := fetchFails(t, f.ar, seg2); !errors.As(err, &pe) {
		t.Fatalf("random bytes: err = %v", err)
	}
	f.ar.AllowPlaintext = true
	dest := filepath.Join(t.TempDir(), "X")
	if err := f.ar.Fetch(context.Background(), seg1, dest, 0, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.logbuf.String(), "accepted a plaintext object from an encrypted archive") {
		t.Fatalf("no warning: %s", f.logbuf)
	}
	// Random bytes are still not a segment.
	fetchFails(t, f.ar, seg2)
}

func TestFetchRefusesNamesThatAreNotWALFiles(t *testing.T) {
	f := newFixture(t, "lz4")
	os.WriteFile(filepath.Join(filepath.Dir(f.store), "x"), []byte("outside"), 0o644)
	for _, n := range []string{"../../x", "../x", "wal_005/" + seg1, "", "00000001000000000000000", seg1 + "x", "x.history"} {
		var ne *NameError
		if err := fetchFails(t, f.ar, n); !errors.As(err, &ne) {
			t.Errorf("%q: err = %v", n, err)
		}
	}
}

func TestJunkPrefetchedFilesAreNeverServed(t *testing.T) {
	f := newFixture(t, "lz4")
	want := f.push(t, seg1)[seg1]
	pf := f.ar.newPrefetchDirs(f.pgwal)
	if err := pf.create(); err != nil {
		t.Fatal(err)
	}
	for _, junk := range [][]byte{[]byte("hello"), make([]byte, 1<<20), makeSegment(t, seg2, testSysID)} {
		os.WriteFile(filepath.Join(pf.dir, seg1), junk, 0o600)
		dest := filepath.Join(f.pgwal, "RECOVERYXLOG")
		if err := f.ar.Fetch(context.Background(), seg1, dest, 1, func(string, string) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
			t.Fatalf("junk of %d bytes was served", len(junk))
		}
		if !strings.Contains(f.logbuf.String(), "discarded an invalid prefetched segment") {
			t.Fatalf("log: %s", f.logbuf)
		}
	}
}

func TestPrefetchIsKeyedByPrefix(t *testing.T) {
	a := newFixture(t, "lz4")
	a.push(t, seg1)
	if err := a.ar.Prefetch(context.Background(), a.pgwal, seg1); err != nil {
		t.Fatal(err)
	}
	// Another archive, whose store cannot be read, restoring into the same pg_wal.
	b := newFixture(t, "lz4")
	os.WriteFile(b.store, []byte("not a directory"), 0o644)
	b.ar.Store = file.New(filepath.Join(b.store, "sub"))
	dest := filepath.Join(a.pgwal, "RECOVERYXLOG")
	err := b.ar.Fetch(context.Background(), seg1, dest, 1, func(string, string) error { return nil })
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("served %s of another prefix: err = %v", seg1, err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("a segment of another prefix was served")
	}
	// Its own prefix still promotes it.
	if err := a.ar.Fetch(context.Background(), seg1, dest, 1, func(string, string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.logbuf.String(), "promoted prefetched wal segment") {
		t.Fatalf("log: %s", a.logbuf)
	}
}

func TestMissingSegmentBeforeAStoredLaterOneIsAGap(t *testing.T) {
	f := newFixture(t, "lz4")
	f.push(t, seg1, seg2, seg3)
	f.ar.GapGrace = -1
	os.Remove(f.object(seg2))
	var ge *GapError
	if err := fetchFails(t, f.ar, seg2); !errors.As(err, &ge) || ge.Name != seg2 || !strings.Contains(err.Error(), seg2) {
		t.Fatalf("err = %v", err)
	}
	// The first segment of timeline 1 is missing too: still a gap.
	os.Remove(f.object(seg1))
	if err := fetchFails(t, f.ar, seg1); !errors.As(err, &ge) {
		t.Fatalf("err = %v", err)
	}
	// The end of the WAL is not.
	if err := f.ar.Fetch(context.Background(), "000000010000000000000004", filepath.Join(t.TempDir(), "X"), 0, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("end of WAL: err = %v", err)
	}
}

func TestMissingSegmentNextToAFreshUploadIsNotYetAGap(t *testing.T) {
	f := newFixture(t, "lz4")
	f.push(t, seg1, seg3)
	f.ar.GapGrace = time.Hour
	if err := f.ar.Fetch(context.Background(), seg2, filepath.Join(t.TempDir(), "X"), 0, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(f.logbuf.String(), "not yet in the archive although a later one is") {
		t.Fatalf("log: %s", f.logbuf)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(f.object(seg3), old, old)
	var ge *GapError
	if err := fetchFails(t, f.ar, seg2); !errors.As(err, &ge) {
		t.Fatalf("err = %v", err)
	}
}

func TestSegmentsBeforeATimelinesBranchPointAreNotGaps(t *testing.T) {
	f := newFixture(t, "lz4")
	f.ar.GapGrace = -1
	// Timeline 2 forked from 1 at 0/3000028, in segment ...03.
	f.push(t, seg1, seg2, seg3)
	hist := filepath.Join(f.pgwal, "00000002.history")
	os.WriteFile(hist, []byte("1\t0/3000028\tno recovery target specified\n"), 0o600)
	if err := f.ar.Push(context.Background(), hist, 1); err != nil {
		t.Fatal(err)
	}
	f.push(t, "000000020000000000000004", "000000020000000000000005")
	for _, n := range []string{"000000020000000000000001", "000000020000000000000002"} {
		if err := f.ar.Fetch(context.Background(), n, filepath.Join(t.TempDir(), "X"), 0, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s, before the branch point: err = %v", n, err)
		}
	}
	// The branch segment itself and those after it must exist on timeline 2.
	var ge *GapError
	if err := fetchFails(t, f.ar, "000000020000000000000003"); !errors.As(err, &ge) {
		t.Fatalf("branch segment: err = %v", err)
	}
}

// failingStore fails every call, as an unreachable store after retries.
type failingStore struct{ storage.Store }

var errUnreachable = errors.New("connection refused")

func (failingStore) Get(context.Context, string) (io.ReadCloser, error) { return nil, errUnreachable }
func (failingStore) Head(context.Context, string) (storage.Object, error) {
	return storage.Object{}, errUnreachable
}
func (failingStore) List(context.Context, string) ([]storage.Object, error) {
	return nil, errUnreachable
}

func TestStoreErrorsAreNotNotFound(t *testing.T) {
	f := newFixture(t, "lz4")
	f.ar.Store = failingStore{f.ar.Store}
	if err := fetchFails(t, f.ar, seg1); !errors.Is(err, errUnreachable) {
		t.Fatalf("err = %v", err)
	}
}

func TestPushRefusesFilesThatAreNotTheNamedSegmentAndStoresNothing(t *testing.T) {
	f := newFixture(t, "lz4")
	path := filepath.Join(f.pgwal, seg1)
	good := makeSegment(t, seg1, testSysID)
	for _, tc := range []struct {
		what string
		b    []byte
	}{
		{"empty", nil},
		{"5 bytes", good[:5]},
		{"truncated", good[:len(good)-8192]},
		{"another segment", makeSegment(t, seg2, testSysID)},
	} {
		os.WriteFile(path, tc.b, 0o600)
		err := f.ar.Push(context.Background(), path, 1)
		var ie *InvalidSegmentError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), seg1) || !strings.Contains(err.Error(), "nothing was stored") {
			t.Fatalf("%s: err = %v", tc.what, err)
		}
		if ents, _ := os.ReadDir(filepath.Join(f.store, "wal_005")); len(ents) != 0 {
			t.Fatalf("%s: stored %v", tc.what, ents)
		}
	}
	// The real segment is then archived.
	os.WriteFile(path, good, 0o600)
	if err := f.ar.Push(context.Background(), path, 1); err != nil {
		t.Fatal(err)
	}
	// History files keep their own rules.
	hist := filepath.Join(f.pgwal, "00000002.history")
	os.WriteFile(hist, []byte("1\t0/3000028\tx\n"), 0o600)
	if err := f.ar.Push(context.Background(), hist, 1); err != nil {
		t.Fatal(err)
	}
}

func TestPushWithPoolAnswersForTheRequestedSegmentOnly(t *testing.T) {
	f := newFixture(t, "lz4")
	f.push(t, seg2)
	// seg2 is stored; a different seg2 now waits in archive_status.
	f.segment(t, seg2, true)
	f.segment(t, seg1, true)
	f.segment(t, seg3, true)
	if err := f.ar.Push(context.Background(), filepath.Join(f.pgwal, seg1), 8); err != nil {
		t.Fatalf("requested segment fine, another conflicting: err = %v", err)
	}
	st := filepath.Join(f.pgwal, "archive_status")
	if _, err := os.Stat(filepath.Join(st, seg2+".ready")); err != nil {
		t.Fatal("the conflicting segment's .ready is gone")
	}
	if _, err := os.Stat(filepath.Join(st, seg3+".done")); err != nil {
		t.Fatal("the good parallel segment was not marked done")
	}
	if log := f.logbuf.String(); !strings.Contains(log, "could not archive a parallel segment") || !strings.Contains(log, seg2) {
		t.Fatalf("log: %s", log)
	}
	// Asked for itself, the conflicting segment fails.
	var ce *ConflictError
	if err := f.ar.Push(context.Background(), filepath.Join(f.pgwal, seg2), 8); !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
}

var _ blob.Crypter = entityCrypter{}
var _ = codec.All
