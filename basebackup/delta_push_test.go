package basebackup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/storage"
)

// seqSession is a server whose WAL moves on by one segment per backup, on
// a timeline and system the test can change.
type seqSession struct {
	seg      uint64
	timeline uint32
	sysid    uint64
	version  int
}

func (s *seqSession) start(context.Context, string) (startInfo, error) {
	s.seg++
	lsn := LSN(s.seg*DefaultSegmentSize + 0x28)
	file, off := FileNameOffset(s.timeline, lsn, DefaultSegmentSize)
	id := s.sysid
	return startInfo{LSN: lsn, File: file, Offset: off, Timeline: s.timeline, Version: "PostgreSQL test",
		VersionNum: s.version, SysID: &id, SegSize: DefaultSegmentSize}, nil
}

func (s *seqSession) stop(context.Context) (stopInfo, error) {
	lsn := LSN(s.seg*DefaultSegmentSize + 0x100)
	file, off := FileNameOffset(s.timeline, lsn, DefaultSegmentSize)
	return stopInfo{LSN: lsn, File: file, Offset: off, Label: "START WAL LOCATION: test\n"}, nil
}

func (s *seqSession) abort() {}
func (s *seqSession) close() {}

// deltaCluster is a data directory with two relation files of pages.
func deltaCluster(t *testing.T) string {
	t.Helper()
	pgdata := t.TempDir()
	var rel []byte
	for i := 0; i < 64; i++ {
		rel = append(rel, testPage(LSN(i+1), byte(i))...)
	}
	for name, body := range map[string][]byte{
		"PG_VERSION": []byte("15\n"), "global/pg_control": bytes.Repeat([]byte{7}, 8192),
		"base/5/16384": rel, "base/5/16385": rel, "base/5/16384_fsm": rel[:3*8192], "pg_xact/0000": rel[:8192],
	} {
		p := filepath.Join(pgdata, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return pgdata
}

// touchPage writes a page with the current WAL position of sess into
// block n of the relation file.
func touchPage(t *testing.T, pgdata, rel string, n int, s *seqSession) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(pgdata, rel), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(testPage(LSN((s.seg+1)*DefaultSegmentSize), 0xEE), int64(n)*8192); err != nil {
		t.Fatal(err)
	}
}

type deltaEnv struct {
	t      *testing.T
	st     storage.Store
	prefix storage.Prefix
	pgdata string
	sess   *seqSession
	format blob.Format
}

func newDeltaEnv(t *testing.T) *deltaEnv {
	st, p, _ := testStore(t)
	return &deltaEnv{t: t, st: st, prefix: p, pgdata: deltaCluster(t),
		sess: &seqSession{timeline: 1, sysid: 42, version: 150004}, format: blob.Format{Codec: codec.LZ4{}}}
}

func (e *deltaEnv) push(maxSteps int, full bool) (Result, string) {
	e.t.Helper()
	log, buf := testLogger()
	// The WAL the backup waits for: its start and stop segment.
	lsn := LSN((e.sess.seg+1)*DefaultSegmentSize + 0x28)
	putWAL(e.t, e.st, SegmentOf(e.sess.timeline, lsn, DefaultSegmentSize))
	res, err := Push(context.Background(), PushOptions{Store: e.st, Prefix: e.prefix, Format: e.format, Log: log, PGData: e.pgdata,
		Concurrency: 2, PartitionSize: 1 << 20, DeltaMaxSteps: maxSteps, Full: full, sess: e.sess})
	if err != nil {
		e.t.Fatal(err)
	}
	return res, buf.String()
}

func (e *deltaEnv) sentinelBytes(key string) []byte {
	e.t.Helper()
	rc, err := e.st.Get(context.Background(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return b
}

func TestDeltaChainUpToMaxStepsThenFull(t *testing.T) {
	e := newDeltaEnv(t)
	full, log := e.push(2, false)
	if full.Parent != "" || !strings.Contains(log, "taking a full backup: there is no backup in the store to build on") {
		t.Fatalf("first push: parent %q, log:\n%s", full.Parent, log)
	}
	m := full.Sentinel.Walden
	if m.FormatVersion != 2 || m.Files == nil || m.Files.Name != "walden_files.json.lz4" || m.Delta != nil {
		t.Fatalf("full manifest: %+v", m)
	}
	fl, err := readFileList(context.Background(), e.st, nil, Backup{Name: full.Name, Sentinel: full.Sentinel})
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]FileEntry{}
	for _, f := range fl.Files {
		paths[f.Path] = f
	}
	for _, p := range []string{"PG_VERSION", "base/5/16384", "base/5/16384_fsm", "global/pg_control", "backup_label", "pg_xact/0000"} {
		if f, ok := paths[p]; !ok || f.Kind != FileWhole || f.Base != full.Name {
			t.Errorf("full file list: %s = %+v", p, f)
		}
	}

	touchPage(t, e.pgdata, "base/5/16384", 10, e.sess)
	d1, log := e.push(2, false)
	if d1.Name != DeltaName(d1.Name[:nameLen], full.Name) || d1.Parent != full.Name || !strings.Contains(log, "taking a delta backup") {
		t.Fatalf("second push %s parent %q:\n%s", d1.Name, d1.Parent, log)
	}
	sum := sha256.Sum256(e.sentinelBytes(SentinelKey(full.Name)))
	want := DeltaInfo{Parent: full.Name, ParentSentinelSHA256: hex.EncodeToString(sum[:]), ParentStartLSN: full.StartLSN.String(), Full: full.Name, Step: 1}
	if got := d1.Sentinel.Walden.Delta; got == nil || *got != want {
		t.Fatalf("delta info %+v, want %+v", got, want)
	}
	if _, err := e.st.Get(context.Background(), DeltaSentinelKey(d1.Name)); err != nil {
		t.Fatalf("delta sentinel: %v", err)
	}
	if _, err := e.st.Get(context.Background(), SentinelKey(d1.Name)); err == nil {
		t.Fatal("a delta was written with WAL-E's sentinel name")
	}
	if d1.Stored*3 > full.Stored {
		t.Errorf("delta stored %d bytes, full %d", d1.Stored, full.Stored)
	}
	if d1.Read < 2*64*8192 || d1.Size >= d1.Read {
		t.Errorf("delta read %d bytes and holds %d: every page must be read, few kept", d1.Read, d1.Size)
	}
	fl1, err := readFileList(context.Background(), e.st, nil, Backup{Name: d1.Name, Sentinel: d1.Sentinel})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fl1.Files {
		switch f.Path {
		case "base/5/16384", "base/5/16385":
			if f.Kind != FilePages || f.Base != full.Name {
				t.Errorf("delta entry %+v", f)
			}
		default:
			if f.Kind != FileWhole || f.Base != d1.Name {
				t.Errorf("delta entry %+v", f)
			}
		}
	}

	touchPage(t, e.pgdata, "base/5/16385", 3, e.sess)
	d2, _ := e.push(2, false)
	if got := d2.Sentinel.Walden.Delta; got == nil || got.Parent != d1.Name || got.Full != full.Name || got.Step != 2 {
		t.Fatalf("second delta: %+v", got)
	}
	if !IsDeltaName(d2.Name) || !strings.HasSuffix(d2.Name, strings.TrimPrefix(d1.Name[:nameLen], "base")) {
		t.Fatalf("second delta's name %s does not name its parent %s", d2.Name, d1.Name)
	}
	third, log := e.push(2, false)
	if third.Parent != "" || !strings.Contains(log, "the chain of "+full.Name+" has reached WALDEN_DELTA_MAX_STEPS=2") {
		t.Fatalf("fourth push is not full: %s\n%s", third.Name, log)
	}
	next, _ := e.push(2, false)
	if next.Parent != third.Name {
		t.Fatalf("a new chain does not start from the new full: parent %q", next.Parent)
	}
}

func TestFullFlagAndZeroStepsTakeFullBackups(t *testing.T) {
	e := newDeltaEnv(t)
	e.push(3, false)
	r, log := e.push(3, true)
	if r.Parent != "" || IsDeltaName(r.Name) || !strings.Contains(log, "taking a full backup: --full was given") {
		t.Fatalf("--full: %s\n%s", r.Name, log)
	}
	r, log = e.push(0, false)
	if r.Parent != "" || strings.Contains(log, "delta") {
		t.Fatalf("WALDEN_DELTA_MAX_STEPS=0: %s\n%s", r.Name, log)
	}
}

func TestParentOfAnotherTimelineSystemOrVersionMeansFull(t *testing.T) {
	cases := []struct {
		change func(*seqSession)
		why    string
	}{
		{func(s *seqSession) { s.timeline = 2 }, "is on timeline 1, the cluster is on timeline 2"},
		{func(s *seqSession) { s.sysid = 43 }, "is of another database system"},
		{func(s *seqSession) { s.version = 160001 }, "is of PostgreSQL 15, the cluster runs 16"},
	}
	for _, c := range cases {
		e := newDeltaEnv(t)
		first, _ := e.push(3, false)
		c.change(e.sess)
		r, log := e.push(3, false)
		if r.Parent != "" || !strings.Contains(log, "newest backup "+first.Name+" "+c.why) {
			t.Errorf("%s: %s\n%s", c.why, r.Name, log)
		}
	}
}

func TestParentWithoutFileListMeansFull(t *testing.T) {
	e := newDeltaEnv(t)
	first, _ := e.push(3, false)
	// Rewrite the sentinel as an older walden (format 1) and as WAL-E.
	s := first.Sentinel
	s.Walden.FormatVersion, s.Walden.Files = 1, nil
	data, _ := s.Marshal()
	e.st.Put(context.Background(), SentinelKey(first.Name), bytes.NewReader(data), int64(len(data)), storage.PutOptions{})
	r, log := e.push(3, false)
	if r.Parent != "" || !strings.Contains(log, "newest backup "+first.Name+" has no file list") {
		t.Fatalf("format 1 parent: %s\n%s", r.Name, log)
	}
	wale := `{"wal_segment_backup_stop": "000000010000000000000002", "wal_segment_offset_backup_stop": "00000256", "expanded_size_bytes": 1, "spec": {"base_prefix": "/x/", "tablespaces": []}}`
	e.st.Put(context.Background(), SentinelKey(r.Name), strings.NewReader(wale), int64(len(wale)), storage.PutOptions{})
	r2, log := e.push(3, false)
	if r2.Parent != "" || !strings.Contains(log, "newest backup "+r.Name+" was not written by walden") {
		t.Fatalf("WAL-E parent: %s\n%s", r2.Name, log)
	}
	// A damaged file list is a reason too, never a failed push.
	e.st.Put(context.Background(), FilesKey(r2.Name, ".lz4"), strings.NewReader("junk"), 4, storage.PutOptions{})
	r3, log := e.push(3, false)
	if r3.Parent != "" || !strings.Contains(log, "the file list of newest backup "+r2.Name+" could not be read") {
		t.Fatalf("damaged file list: %s\n%s", r3.Name, log)
	}
}

func TestWALECompressionTakesOnlyFullsAndWarnsOnce(t *testing.T) {
	e := newDeltaEnv(t)
	e.format = blob.Format{Codec: codec.ByKey("x.lzo")}
	if e.format.Codec.Name() != "lzo" {
		t.Fatalf("codec for .lzo is %s", e.format.Codec.Name())
	}
	e.push(3, false)
	touchPage(t, e.pgdata, "base/5/16384", 1, e.sess)
	r, log := e.push(3, false)
	if r.Parent != "" || IsDeltaName(r.Name) {
		t.Fatalf("lzo push made a delta: %s", r.Name)
	}
	if n := strings.Count(log, "WARNING"); n != 1 || !strings.Contains(log, "WALDEN_DELTA_MAX_STEPS is ignored: WALDEN_COMPRESSION=lzo") {
		t.Fatalf("%d warnings:\n%s", n, log)
	}
}

// sealOnly encrypts (an OpenPGP-looking prefix before the bytes) but cannot
// decrypt: a host holding only the public key.
type sealOnly struct{}

type sealWriter struct{ w io.Writer }

func (s sealWriter) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s sealWriter) Close() error                { return nil }

func (sealOnly) Encrypt(w io.Writer) (io.WriteCloser, error) {
	if _, err := w.Write([]byte{0xC1, 0x0C, 0x03}); err != nil {
		return nil, err
	}
	return sealWriter{w}, nil
}

func (sealOnly) Decrypt(io.Reader) (io.ReadCloser, error) {
	return nil, errors.New("no secret key")
}

func TestEncryptOnlyHostBuildsDeltasFromItsKeptFileList(t *testing.T) {
	e := newDeltaEnv(t)
	e.format = blob.Format{Codec: codec.LZ4{}, Crypt: sealOnly{}}
	full, _ := e.push(3, false)
	touchPage(t, e.pgdata, "base/5/16384", 2, e.sess)
	d, log := e.push(3, false)
	if d.Parent != full.Name {
		t.Fatalf("encrypt-only host took no delta: %s\n%s", d.Name, log)
	}
	// Without the kept list the parent's list cannot be read: full, and why.
	path, _, err := fileListCachePath(e.pgdata)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	r, log := e.push(3, false)
	if r.Parent != "" || !strings.Contains(log, "the file list of newest backup "+d.Name+" could not be read") {
		t.Fatalf("no kept list: %s\n%s", r.Name, log)
	}
	// A kept list of another object is never used.
	touchPage(t, e.pgdata, "base/5/16384", 3, e.sess)
	saveFileListCache(e.pgdata, strings.Repeat("0", 64), FileList{FormatVersion: 1, BlockSize: 8192})
	r2, log := e.push(3, false)
	if r2.Parent != "" || !strings.Contains(log, "could not be read") {
		t.Fatalf("a kept list of another object was used: %s\n%s", r2.Name, log)
	}
}
