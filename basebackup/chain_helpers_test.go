package basebackup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/storage"
)

// These helpers write backup chains in the DELTA.md format through the
// real codec and store, from in-memory data directory states: what a
// push would store, so that restores can be tested on their own.

const testBlk = 8192

// simState is a data directory: member path to content.
type simState map[string][]byte

// simBackup is one backup the chain writer stored.
type simBackup struct {
	name     string
	sentinel []byte
	list     FileList
	lsn      LSN
	step     int
	full     string
	delta    bool
	key      string // the sentinel's key
}

type chainWriter struct {
	t      testing.TB
	st     storage.Store
	dir    string // the file store's directory
	format blob.Format
	rng    *rand.Rand
	parts  int // partitions per backup (members are spread at random)
	seq    int
	sysid  uint64
	tli    uint32
	prev   simState
}

func newChainWriter(t *testing.T, seed int64) (*chainWriter, storage.Store, storage.Prefix) {
	st, prefix, dir := testStore(t)
	return &chainWriter{t: t, st: st, dir: dir, format: blob.Format{Codec: codec.LZ4{}}, rng: rand.New(rand.NewSource(seed)),
		parts: 3, sysid: 7000000000000000001, tli: 1}, st, prefix
}

var simRelRe = regexp.MustCompile(`^(base/[0-9]+/|global/|pg_tblspc/[0-9]+/[^/]+/[0-9]+/)[0-9]+(\.[0-9]+)?$`)

type simMember struct {
	name string
	typ  byte
	data []byte
}

// push stores state as a full backup (parent nil) or as a delta of parent
// computed against the state the writer stored last.
func (w *chainWriter) push(state simState, parent *simBackup) *simBackup {
	w.t.Helper()
	ctx := context.Background()
	w.seq++
	lsn := LSN(uint64(w.seq)<<24 | 0x28)
	file, off := FileNameOffset(w.tli, lsn, 0)
	own := BackupName(file, off)
	b := &simBackup{name: own, lsn: lsn, full: own}
	if parent != nil {
		b.name = DeltaName(own, parent.name)
		b.delta, b.step, b.full = true, parent.step+1, parent.full
	}
	var members []simMember
	dirs := map[string]bool{}
	paths := make([]string, 0, len(state))
	for p := range state {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var parentList map[string]FileEntry
	if parent != nil {
		parentList = map[string]FileEntry{}
		for _, e := range parent.list.Files {
			parentList[e.Path] = e
		}
	}
	b.list = FileList{FormatVersion: 1, BlockSize: testBlk}
	var last []simMember
	for _, p := range paths {
		data := state[p]
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
		if p == "global/pg_control" || p == "backup_label" {
			last = append(last, simMember{p, tar.TypeReg, data})
			continue
		}
		pe, inParent := parentList[p]
		if parent != nil && inParent && simRelRe.MatchString(p) && len(data)%testBlk == 0 {
			old := w.prev[p]
			var blocks []uint32
			var pages []byte
			for blk := 0; blk*testBlk < len(data); blk++ {
				pg := data[blk*testBlk : (blk+1)*testBlk]
				if (blk+1)*testBlk > len(old) || !bytes.Equal(pg, old[blk*testBlk:(blk+1)*testBlk]) {
					blocks = append(blocks, uint32(blk))
					pages = append(pages, pg...)
				}
			}
			if len(blocks) > 0 || len(data) != len(old) {
				members = append(members, simMember{p + DeltaMemberSuffix, tar.TypeReg, encodeDelta(testBlk, int64(len(data)), blocks, pages)})
			}
			b.list.Files = append(b.list.Files, FileEntry{Path: p, Size: int64(len(data)), Kind: FilePages, Base: pe.Base})
			continue
		}
		members = append(members, simMember{p, tar.TypeReg, data})
		b.list.Files = append(b.list.Files, FileEntry{Path: p, Size: int64(len(data)), Kind: FileWhole, Base: b.name})
	}
	for d := range dirs {
		members = append(members, simMember{d, tar.TypeDir, nil})
	}
	w.rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	parts := make([][]simMember, w.parts)
	for i, m := range members {
		parts[i%w.parts] = append(parts[i%w.parts], m)
	}
	parts = append(parts, last)
	var infos []PartitionInfo
	var expanded int64
	for n, ms := range parts {
		var raw bytes.Buffer
		tw := tar.NewWriter(&raw)
		for _, m := range ms {
			hdr := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: 0o600, ModTime: time.Unix(1700000000, 0)}
			if m.typ == tar.TypeDir {
				hdr.Mode = 0o700
			}
			hdr.Size = int64(len(m.data))
			if err := tw.WriteHeader(hdr); err != nil {
				w.t.Fatal(err)
			}
			tw.Write(m.data)
			expanded += hdr.Size
		}
		tw.Close()
		name := PartitionName(n, w.format.Ext())
		stored := w.encode(raw.Bytes())
		w.putObj(PartitionDir(b.name)+name, stored)
		sum := sha256.Sum256(stored)
		infos = append(infos, PartitionInfo{Name: name, StoredSize: int64(len(stored)), SHA256: hex.EncodeToString(sum[:]), ExpandedSize: int64(raw.Len()), Members: len(ms)})
	}
	lj, _ := json.Marshal(b.list)
	storedList := w.encode(lj)
	w.putObj(FilesKey(b.name, w.format.Ext()), storedList)
	lsum := sha256.Sum256(storedList)
	w.putObj(VersionKey(b.name), []byte("PostgreSQL 15\n"))
	start, finish := uint64(lsn), uint64(lsn)+0x100
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(w.seq) * time.Hour)
	sysid := w.sysid
	stopFile, stopOff := FileNameOffset(w.tli, LSN(finish), 0)
	s := &Sentinel{StopSegment: stopFile, StopOffset: PadOffset(stopOff), ExpandedSizeBytes: expanded, Spec: &Spec{BasePrefix: "/var/lib/postgresql/15/main/"},
		Extra: Extra{LSN: &start, FinishLSN: &finish, PgVersion: 150004, SystemIdentifier: &sysid, StartTime: &now, FinishTime: &now,
			Walden: &Manifest{FormatVersion: 2, Compression: "lz4", Partitions: infos, Timeline: w.tli, StartLSN: lsn.String(), FinishLSN: LSN(finish).String(),
				Files: &FilesInfo{Name: FilesObject + w.format.Ext(), StoredSize: int64(len(storedList)), SHA256: hex.EncodeToString(lsum[:]), Count: len(b.list.Files)}}}}
	if parent != nil {
		s.Walden.Delta = &DeltaInfo{Parent: parent.name, ParentSentinelSHA256: sha256Hex(parent.sentinel), ParentStartLSN: parent.lsn.String(), Full: parent.full, Step: b.step}
	}
	data, err := s.Marshal()
	if err != nil {
		w.t.Fatal(err)
	}
	b.sentinel = data
	b.key = SentinelKey(b.name)
	if b.delta {
		b.key = DeltaSentinelKey(b.name)
	}
	w.putObj(b.key, data)
	if err := os.Chtimes(filepath.Join(w.dir, b.key), now, now); err != nil {
		w.t.Fatal(err)
	}
	_ = ctx
	w.prev = state
	return b
}

func (w *chainWriter) encode(raw []byte) []byte {
	var out bytes.Buffer
	bw, err := w.format.NewWriter(&out)
	if err != nil {
		w.t.Fatal(err)
	}
	bw.Write(raw)
	if err := bw.Close(); err != nil {
		w.t.Fatal(err)
	}
	return out.Bytes()
}

func (w *chainWriter) putObj(key string, data []byte) {
	if err := w.st.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

// encodeDelta builds a page-delta member (DELTA.md).
func encodeDelta(blcksz int, filesize int64, blocks []uint32, pages []byte) []byte {
	var b bytes.Buffer
	b.WriteString(DeltaMagic)
	binary.Write(&b, binary.LittleEndian, uint32(blcksz))
	binary.Write(&b, binary.LittleEndian, uint32(len(blocks)))
	binary.Write(&b, binary.LittleEndian, uint64(filesize))
	for _, n := range blocks {
		binary.Write(&b, binary.LittleEndian, n)
	}
	b.Write(pages)
	return b.Bytes()
}

// readTree returns every regular file under dir (symlinked tablespace
// directories followed) as a simState.
func readTree(t *testing.T, dir string) simState {
	t.Helper()
	out := simState{}
	var walk func(real, rel string)
	walk = func(real, rel string) {
		ents, err := os.ReadDir(real)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p := filepath.Join(real, e.Name())
			r := filepath.ToSlash(filepath.Join(rel, e.Name()))
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.IsDir() {
				walk(p, r)
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[r] = data
		}
	}
	walk(dir, "")
	return out
}

// sameState reports the first difference between want and a restored tree
// (pg_wal, made by every restore, is ignored).
func sameState(want, got simState) error {
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			return fmt.Errorf("%s is missing", p)
		}
		if !bytes.Equal(w, g) {
			return fmt.Errorf("%s differs: %d bytes, want %d", p, len(g), len(w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			return fmt.Errorf("%s should not exist", p)
		}
	}
	return nil
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

func cloneState(s simState) simState {
	out := simState{}
	for k, v := range s {
		out[k] = append([]byte(nil), v...)
	}
	return out
}

var _ = io.EOF
