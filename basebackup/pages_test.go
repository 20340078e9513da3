package basebackup

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// testPage builds a valid heap-like page with the given LSN and a filler
// byte, so that pages are told apart after a round trip.
func testPage(lsn LSN, fill byte) []byte {
	pg := bytes.Repeat([]byte{fill}, defaultBlockSize)
	binary.LittleEndian.PutUint32(pg[0:], uint32(uint64(lsn)>>32))
	binary.LittleEndian.PutUint32(pg[4:], uint32(lsn))
	binary.LittleEndian.PutUint16(pg[12:], 40)                    // pd_lower
	binary.LittleEndian.PutUint16(pg[14:], 4000)                  // pd_upper
	binary.LittleEndian.PutUint16(pg[16:], defaultBlockSize)      // pd_special
	binary.LittleEndian.PutUint16(pg[18:], defaultBlockSize|0x04) // size and version
	return pg
}

func TestPageQualifiesAtOrAfterThresholdNewOrTorn(t *testing.T) {
	const thr = LSN(0x1_0000_5000)
	setU16 := func(pg []byte, off int, v uint16) []byte {
		binary.LittleEndian.PutUint16(pg[off:], v)
		return pg
	}
	cases := []struct {
		name string
		pg   []byte
		want bool
	}{
		{"lsn before threshold", testPage(thr-1, 1), false},
		{"lsn at threshold", testPage(thr, 1), true},
		{"lsn after threshold", testPage(thr+0x1_0000_0000, 1), true},
		{"lsn with only a lower high word", testPage(0x0_FFFF_FFFF, 1), false},
		{"all-zero page", make([]byte, defaultBlockSize), true},
		{"pd_upper 0 (new)", setU16(testPage(1, 1), 14, 0), true},
		{"pd_lower below the header", setU16(testPage(1, 1), 12, 10), true},
		{"pd_lower above pd_upper", setU16(testPage(1, 1), 12, 5000), true},
		{"pd_upper above pd_special", setU16(testPage(1, 1), 16, 3000), true},
		{"pd_special beyond the page", setU16(testPage(1, 1), 16, 9000), true},
	}
	for _, c := range cases {
		if got := pageQualifies(c.pg, thr); got != c.want {
			t.Errorf("%s: pageQualifies = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestOnlyMainForkRelationSegmentsArePageDiffed(t *testing.T) {
	yes := []string{"base/5/16384", "base/5/16384.1", "base/16401/2619.12", "global/1262",
		"pg_tblspc/16385/PG_15_202209061/5/16386", "pg_tblspc/16385/PG_15_202209061/5/16386.3"}
	no := []string{"base/5/16384_fsm", "base/5/16384_vm", "base/5/16384_init", "base/5/16384_fsm.1",
		"base/5/PG_VERSION", "base/5/pg_filenode.map", "global/pg_control", "pg_xact/0000",
		"pg_multixact/offsets/0000", "postgresql.conf", "base/5/t3_16384", "16384", "base/16384",
		"pg_tblspc/16385/PG_15_202209061/16386", "base/5/sub/16384"}
	for _, n := range yes {
		if !pageDiffable(n) {
			t.Errorf("%s should be page-diffed", n)
		}
	}
	for _, n := range no {
		if pageDiffable(n) {
			t.Errorf("%s should be stored whole", n)
		}
	}
}

// decodeDeltaMemberForTest parses a page-delta member as DELTA.md defines
// it, independently of the writer's code.
func decodeDeltaMemberForTest(t *testing.T, b []byte) (blcksz int, blocks []uint32, filesize int64, pages [][]byte) {
	t.Helper()
	if len(b) < 24 || string(b[:8]) != DeltaMagic {
		t.Fatalf("member does not start with %s", DeltaMagic)
	}
	blcksz = int(binary.LittleEndian.Uint32(b[8:]))
	n := int(binary.LittleEndian.Uint32(b[12:]))
	filesize = int64(binary.LittleEndian.Uint64(b[16:]))
	if len(b) != 24+4*n+n*blcksz {
		t.Fatalf("member is %d bytes, its header says %d pages of %d", len(b), n, blcksz)
	}
	for i := 0; i < n; i++ {
		blocks = append(blocks, binary.LittleEndian.Uint32(b[24+4*i:]))
		if i > 0 && blocks[i] <= blocks[i-1] {
			t.Fatalf("block numbers not strictly increasing: %v", blocks)
		}
	}
	off := 24 + 4*n
	for i := 0; i < n; i++ {
		pages = append(pages, b[off+i*blcksz:off+(i+1)*blcksz])
	}
	return
}

// writeDeltaTar writes the members through a delta's tarWriter and returns
// the tar members by name, and the file list entries.
func writeDeltaTar(t *testing.T, thr LSN, ms []member) (map[string][]byte, []FileEntry) {
	t.Helper()
	var out bytes.Buffer
	var read atomic.Int64
	tw := newTarWriter(&out, nil, &read, newIDNames(t.TempDir()))
	tw.own, tw.threshold, tw.blcksz = "base_000000010000000000000009_00000040_D_000000010000000000000004_00000028", thr, defaultBlockSize
	for _, m := range ms {
		if err := tw.add(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.close(); err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = b
	}
	return got, tw.files
}

func TestDeltaMemberHoldsQualifyingPagesAndRoundTrips(t *testing.T) {
	const thr = LSN(0x5000028)
	dir := t.TempDir()
	// Blocks: 0 old, 1 changed, 2 old, 3 torn, 4 new (zero), 5 old but
	// beyond the parent's size (4 pages + a part: block 4 and up).
	var file []byte
	pages := [][]byte{testPage(thr-100, 'a'), testPage(thr+8, 'b'), testPage(1, 'c'), nil, make([]byte, defaultBlockSize), testPage(2, 'f')}
	pages[3] = testPage(3, 'd')
	binary.LittleEndian.PutUint16(pages[3][12:], 9) // torn: pd_lower inside the header
	for _, p := range pages {
		file = append(file, p...)
	}
	path := filepath.Join(dir, "16384")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	parent := &FileEntry{Path: "base/5/16384", Size: 4*defaultBlockSize + 100, Kind: FileWhole, Base: "base_000000010000000000000004_00000028"}
	got, files := writeDeltaTar(t, thr, []member{{name: "base/5/16384", path: path, kind: kindFile, parent: parent}})
	if _, ok := got["base/5/16384"]; ok {
		t.Fatal("a page-diffed file was also stored whole")
	}
	bs, blocks, size, pgs := decodeDeltaMemberForTest(t, got["base/5/16384"+DeltaMemberSuffix])
	if bs != defaultBlockSize || size != int64(len(file)) {
		t.Fatalf("blcksz %d filesize %d", bs, size)
	}
	want := []uint32{1, 3, 4, 5}
	if len(blocks) != len(want) {
		t.Fatalf("blocks %v, want %v", blocks, want)
	}
	for i, b := range want {
		if blocks[i] != b || !bytes.Equal(pgs[i], pages[b]) {
			t.Fatalf("page %d: block %d (want %d) or content differs", i, blocks[i], b)
		}
	}
	if len(files) != 1 || files[0] != (FileEntry{Path: "base/5/16384", Size: int64(len(file)), Kind: FilePages, Base: parent.Base}) {
		t.Fatalf("file list entry %+v", files)
	}
}

func TestDeltaStoresWholeOrNothingWhereThePagesCannotSay(t *testing.T) {
	const thr = LSN(0x5000028)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := append(testPage(1, 'x'), testPage(2, 'y')...)
	unchanged := write("unchanged", old)
	odd := write("odd", append(append([]byte{}, old...), 1, 2, 3))
	shrunk := write("shrunk", old[:defaultBlockSize])
	whole := write("whole", old)
	base := "base_000000010000000000000004_00000028"
	pe := func(name string, size int64) *FileEntry {
		return &FileEntry{Path: name, Size: size, Kind: FileWhole, Base: base}
	}
	got, files := writeDeltaTar(t, thr, []member{
		{name: "base/5/100", path: unchanged, kind: kindFile, parent: pe("base/5/100", int64(len(old)))},
		{name: "base/5/101", path: odd, kind: kindFile, parent: pe("base/5/101", int64(len(old)))},
		{name: "base/5/102", path: shrunk, kind: kindFile, parent: pe("base/5/102", int64(len(old)))},
		{name: "base/5/103_fsm", path: whole, kind: kindFile}, // planDelta leaves forks whole
	})
	if _, ok := got["base/5/100"+DeltaMemberSuffix]; ok {
		t.Error("an unchanged file got a delta member")
	}
	if _, ok := got["base/5/100"]; ok {
		t.Error("an unchanged file was stored whole")
	}
	if b := got["base/5/101"]; len(b) != len(old)+3 {
		t.Errorf("a file whose size is not a page multiple is not stored whole (%d bytes)", len(b))
	}
	_, blocks, size, _ := decodeDeltaMemberForTest(t, got["base/5/102"+DeltaMemberSuffix])
	if len(blocks) != 0 || size != defaultBlockSize {
		t.Errorf("truncated file: blocks %v size %d, want none and %d", blocks, size, defaultBlockSize)
	}
	if len(got["base/5/103_fsm"]) != len(old) {
		t.Error("fsm fork not stored whole")
	}
	want := map[string]FileEntry{
		"base/5/100":     {Path: "base/5/100", Size: int64(len(old)), Kind: FilePages, Base: base},
		"base/5/101":     {Path: "base/5/101", Size: int64(len(old)) + 3, Kind: FileWhole, Base: "base_000000010000000000000009_00000040_D_000000010000000000000004_00000028"},
		"base/5/102":     {Path: "base/5/102", Size: defaultBlockSize, Kind: FilePages, Base: base},
		"base/5/103_fsm": {Path: "base/5/103_fsm", Size: int64(len(old)), Kind: FileWhole, Base: "base_000000010000000000000009_00000040_D_000000010000000000000004_00000028"},
	}
	if len(files) != len(want) {
		t.Fatalf("file list %+v", files)
	}
	for _, f := range files {
		if want[f.Path] != f {
			t.Errorf("entry %+v, want %+v", f, want[f.Path])
		}
	}
}

func TestPlanDeltaPageDiffsOnlyRelationsTheParentHolds(t *testing.T) {
	p := &deltaParent{files: map[string]*FileEntry{
		"base/5/16384": {Path: "base/5/16384", Size: 8192}, "base/5/16384_vm": {Path: "base/5/16384_vm"},
		"pg_xact/0000": {Path: "pg_xact/0000"},
	}}
	ms := []member{
		{name: "base/5/16384", kind: kindFile}, {name: "base/5/16390", kind: kindFile}, // new since the parent
		{name: "base/5/16384_vm", kind: kindFile}, {name: "pg_xact/0000", kind: kindFile}, {name: "base/5/", kind: kindDir},
	}
	planDelta(ms, p)
	for _, m := range ms {
		if got, want := m.parent != nil, m.name == "base/5/16384"; got != want {
			t.Errorf("%s: page-diffed %v, want %v", m.name, got, want)
		}
	}
}
