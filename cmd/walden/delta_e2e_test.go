package main

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
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/internal/pgtest"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/file"
)

// Delta backups end to end: real PostgreSQL 15 under pgbench load, real
// walden pushes with WALDEN_DELTA_MAX_STEPS, restores compared with the
// primary's data.

// deNewest is the backup whose sentinel (full or delta) was written last.
func deNewest(t *testing.T, store string) string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(store, "basebackups_005"))
	if err != nil {
		t.Fatal(err)
	}
	var best string
	var bestT time.Time
	for _, e := range ents {
		n := e.Name()
		var name string
		switch {
		case strings.HasSuffix(n, "_walden_delta_sentinel.json"):
			name = strings.TrimSuffix(n, "_walden_delta_sentinel.json")
		case strings.HasSuffix(n, "_backup_stop_sentinel.json"):
			name = strings.TrimSuffix(n, "_backup_stop_sentinel.json")
		default:
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if best == "" || !fi.ModTime().Before(bestT) {
			best, bestT = name, fi.ModTime()
		}
	}
	if best == "" {
		t.Fatal("no backup in the store")
	}
	return best
}

// dePush runs backup-push (with args) while pgbench writes, and returns
// the name of the backup it stored.
func dePush(t *testing.T, c *pgtest.Cluster, bin, envdir, store string, args ...string) (string, bbResult) {
	t.Helper()
	load := pgtest.Command(t, c.Env(), c.Base, filepath.Join(c.BinDir, "pgbench"), "-n", "-c", "2", "-T", "4")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	r := bbWalden(t, bin, envdir, c.Env(), append([]string{"backup-push"}, append(args, c.Dir)...)...)
	if err := load.Wait(); err != nil {
		t.Fatalf("pgbench: %v", err)
	}
	bbMust(t, r, "backup-push")
	return deNewest(t, store), r
}

// deSentinel reads a backup's sentinel from the file store.
func deSentinel(t *testing.T, store, name string) *basebackup.Sentinel {
	t.Helper()
	key := basebackup.SentinelKey(name)
	if basebackup.IsDeltaName(name) {
		key = basebackup.DeltaSentinelKey(name)
	}
	data, err := os.ReadFile(filepath.Join(store, key))
	if err != nil {
		t.Fatal(err)
	}
	s, err := basebackup.ParseSentinel(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deWantDelta fails unless name is a delta of parent at step.
func deWantDelta(t *testing.T, store, name, parent string, step int) {
	t.Helper()
	if !basebackup.IsDeltaName(name) {
		t.Fatalf("backup-push with WALDEN_DELTA_MAX_STEPS wrote the full backup %s where a delta of %s (step %d) was due", name, parent, step)
	}
	s := deSentinel(t, store, name)
	if s.Walden == nil || s.Walden.Delta == nil || s.Walden.Delta.Parent != parent || s.Walden.Delta.Step != step {
		t.Fatalf("delta %s: manifest %+v, want parent %s step %d", name, s.Walden, parent, step)
	}
}

// deData is the primary's data at one point: a checksum per table and the
// markers.
func deData(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	var out []string
	for _, q := range []string{
		"select md5(coalesce(string_agg(t::text, ',' order by aid), '')) from pgbench_accounts t",
		"select md5(coalesce(string_agg(t::text, ',' order by bid), '')) from pgbench_branches t",
		"select md5(coalesce(string_agg(t::text, ',' order by tid), '')) from pgbench_tellers t",
		"select md5(coalesce(string_agg(t::text, ',' order by tid, bid, aid, mtime, delta), '')) from pgbench_history t",
		"select coalesce(string_agg(note, ',' order by id), '') from marker",
	} {
		out = append(out, c.Psql(t, q))
	}
	return strings.Join(out, " ")
}

// deAmcheck runs pg_amcheck over every relation of the restored cluster.
func deAmcheck(t *testing.T, r *pgtest.Cluster) {
	t.Helper()
	cmd := pgtest.Command(t, r.Env(), r.Base, filepath.Join(r.BinDir, "pg_amcheck"), "--install-missing", "--heapallindexed", "-d", "postgres")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("pg_amcheck on the restored cluster: %v\n%s", err, out)
	}
}

// TestDeltaChainsOfOneTwoAndThreeRestoreExactlyUnderLoad takes a full
// backup and three deltas of a cluster under pgbench load; each delta's
// chain restores with backup-fetch to the primary's data at the end of the
// archive, and walden restore --target-time between two deltas starts from
// the older delta and reaches the data of that moment. The fourth push,
// with three deltas in the chain, is full again.
func TestDeltaChainsOfOneTwoAndThreeRestoreExactlyUnderLoad(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 3, map[string]string{"WALDEN_DELTA_MAX_STEPS": "3"})
	full, _ := dePush(t, c, bin, envdir, store)
	if basebackup.IsDeltaName(full) {
		t.Fatalf("the first backup %s is a delta", full)
	}
	names := []string{full}
	var at []string
	var when []string
	for i := 1; i <= 3; i++ {
		c.Pgbench(t, "-n", "-c", "2", "-t", "300")
		name, _ := dePush(t, c, bin, envdir, store)
		deWantDelta(t, store, name, names[i-1], i)
		names = append(names, name)
		c.Psql(t, fmt.Sprintf("insert into marker values (%d, 'after-delta-%d')", i, i))
		at = append(at, deData(t, c))
		time.Sleep(1100 * time.Millisecond)
		when = append(when, c.Psql(t, "select now()::text"))
		time.Sleep(1100 * time.Millisecond)
		c.Pgbench(t, "-n", "-c", "1", "-t", "200")
	}
	next, _ := dePush(t, c, bin, envdir, store)
	if basebackup.IsDeltaName(next) {
		t.Errorf("the push after three deltas (WALDEN_DELTA_MAX_STEPS=3) wrote the delta %s", next)
	}
	bbArchiveAll(t, c)
	final := deData(t, c)

	for i := 1; i <= 3; i++ {
		t.Run(fmt.Sprintf("backup-fetch chain of %d", i), func(t *testing.T) {
			r := bbFetchAndReplay(t, bin, envdir, names[i])
			if got := deData(t, r); got != final {
				t.Errorf("restore of %s: data %s, want %s", names[i], got, final)
			}
			deAmcheck(t, r)
			r.Stop(t)
		})
	}
	for i := 1; i <= 2; i++ {
		t.Run(fmt.Sprintf("restore --target-time after delta %d", i), func(t *testing.T) {
			r, log := bbRestoreToTime(t, bin, envdir, when[i-1])
			if !strings.Contains(log, "Starting from "+names[i]+".") {
				t.Errorf("restore did not start from %s:\n%s", names[i], bbTail(log, 2000))
			}
			if got := deData(t, r); got != at[i-1] {
				t.Errorf("data %s, want %s", got, at[i-1])
			}
			r.Stop(t)
		})
	}
	t.Run("backup-list", func(t *testing.T) {
		list := bbMust(t, bbWalden(t, bin, envdir, nil, "backup-list"), "backup-list")
		lines := strings.Split(strings.TrimSuffix(list.stdout, "\r\n"), "\r\n")
		if len(lines) != 6 || lines[0] != strings.Join(basebackup.ListHeader, "\t") {
			t.Fatalf("backup-list:\n%s", list.stdout)
		}
		for _, l := range lines {
			if n := len(strings.Split(l, "\t")); n != 7 {
				t.Errorf("line %q has %d columns, WAL-E's 7", l, n)
			}
		}
		detail := bbMust(t, bbWalden(t, bin, envdir, nil, "backup-list", "--detail"), "backup-list --detail")
		for i := 1; i <= 3; i++ {
			if !strings.Contains(detail.stdout, names[i]+"\t") || !strings.Contains(detail.stdout, "\t"+names[i-1]+"\r\n") {
				t.Errorf("--detail does not name %s's parent %s:\n%s", names[i], names[i-1], detail.stdout)
			}
		}
		v := bbWalden(t, bin, envdir, nil, "verify", "--backup", names[3])
		if v.code != 0 || !strings.Contains(v.stdout, "delta of "+names[0]) {
			t.Errorf("verify of %s: exit %d\n%s\n%s", names[3], v.code, v.stdout, bbTail(v.stderr, 2000))
		}
	})
}

// TestDeltaWithAMissingOrCorruptParentFailsBeforeAnythingStartable: a
// delta whose full backup's sentinel was deleted by hand fails before a
// file is written, and is listed as broken; one whose full backup has a
// damaged partition fails during the fetch and leaves no pg_control.
func TestDeltaWithAMissingOrCorruptParentFailsBeforeAnythingStartable(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 2, map[string]string{"WALDEN_DELTA_MAX_STEPS": "2"})
	full, _ := dePush(t, c, bin, envdir, store)
	c.Pgbench(t, "-n", "-c", "1", "-t", "200")
	delta, _ := dePush(t, c, bin, envdir, store)
	deWantDelta(t, store, delta, full, 1)
	bbArchiveAll(t, c)

	sentinel := filepath.Join(store, basebackup.SentinelKey(full))
	// Out of the store: a name that merely starts like a sentinel still
	// lists as one, as in WAL-E.
	aside := filepath.Join(t.TempDir(), "sentinel")
	if err := os.Rename(sentinel, aside); err != nil {
		t.Fatal(err)
	}
	target := bbRestoreTarget(t)
	r := bbWalden(t, bin, envdir, nil, "backup-fetch", target.Dir, delta)
	if r.code == 0 {
		t.Fatalf("backup-fetch of a delta without its full backup succeeded:\n%s\n%s", r.stdout, bbTail(r.stderr, 3000))
	}
	bbOneError(t, r, full)
	if _, err := os.Stat(filepath.Join(target.Dir, "PG_VERSION")); err == nil {
		t.Error("the failed fetch wrote PG_VERSION: it did not fail before writing")
	}
	bbNoPgControl(t, target.Dir)
	list := bbWalden(t, bin, envdir, nil, "backup-list")
	if !strings.Contains(list.stderr, "broken base backup") || !strings.Contains(list.stderr, delta) {
		t.Errorf("backup-list does not warn about %s:\n%s", delta, bbTail(list.stderr, 2000))
	}
	if err := os.Rename(aside, sentinel); err != nil {
		t.Fatal(err)
	}

	parts, _ := filepath.Glob(filepath.Join(store, basebackup.PartitionDir(full), "part_00000000.tar*"))
	if len(parts) != 1 {
		t.Fatalf("partitions %v", parts)
	}
	data, err := os.ReadFile(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(parts[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	target2 := bbRestoreTarget(t)
	r = bbWalden(t, bin, envdir, nil, "backup-fetch", target2.Dir, delta)
	if r.code == 0 {
		t.Fatal("backup-fetch of a delta whose full backup is corrupt succeeded")
	}
	bbOneError(t, r, "corrupt")
	bbNoPgControl(t, target2.Dir)
}

// TestRetentionKeepsWhatDeltaChainsNeedEndToEnd: delete retain and delete
// before never remove a backup a kept delta builds on, nor its WAL, and
// the kept delta restores afterwards.
func TestRetentionKeepsWhatDeltaChainsNeedEndToEnd(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 2, map[string]string{"WALDEN_DELTA_MAX_STEPS": "2"})
	var names []string
	for i := 0; i < 5; i++ { // full, delta, delta, full, delta
		c.Pgbench(t, "-n", "-c", "1", "-t", "100")
		n, _ := dePush(t, c, bin, envdir, store)
		names = append(names, n)
	}
	deWantDelta(t, store, names[1], names[0], 1)
	deWantDelta(t, store, names[2], names[1], 2)
	if basebackup.IsDeltaName(names[3]) {
		t.Fatalf("%s is a delta, the chain was full", names[3])
	}
	deWantDelta(t, store, names[4], names[3], 1)
	has := func(name string) bool {
		return slices.ContainsFunc(bbStoreKeys(t, store), func(k string) bool {
			return strings.HasPrefix(k, "basebackups_005/"+name+"_") && strings.HasSuffix(k, "sentinel.json")
		})
	}
	// retain 1: the newest is a delta, so its full backup stays too.
	bbMust(t, bbWalden(t, bin, envdir, nil, "delete", "--confirm", "retain", "1"), "delete retain 1")
	for i, want := range []bool{false, false, false, true, true} {
		if has(names[i]) != want {
			t.Errorf("after retain 1: %s present %v, want %v", names[i], has(names[i]), want)
		}
	}
	horizon := names[3][5:29]
	keys := bbStoreKeys(t, store)
	if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, "wal_005/"+horizon) }) {
		t.Errorf("the start segment %s of the full backup the kept delta needs was deleted", horizon)
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "basebackups_005/") && !strings.Contains(k, names[3]) && !strings.Contains(k, names[4]) {
			t.Errorf("%s survived", k)
		}
	}
	// delete before the delta: its full backup stays.
	bbMust(t, bbWalden(t, bin, envdir, nil, "delete", "--confirm", "before", names[4]), "delete before the delta")
	if !has(names[3]) || !has(names[4]) {
		t.Fatalf("delete before %s removed what it needs", names[4])
	}
	c.Psql(t, "insert into marker values (1, 'end')")
	bbArchiveAll(t, c)
	final := deData(t, c)
	r := bbFetchAndReplay(t, bin, envdir, "LATEST")
	if got := deData(t, r); got != final {
		t.Errorf("restore of LATEST after retention: %s, want %s", got, final)
	}
	r.Stop(t)
}

// TestWALGAndWALESeeNoDeltas: WAL-G's backup-list shows only the full
// backups, and its LATEST restores the full one; walden's backup-list
// keeps WAL-E's columns.
func TestWALGAndWALESeeNoDeltas(t *testing.T) {
	walg := walgBinary(t)
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 2, map[string]string{"WALDEN_DELTA_MAX_STEPS": "2"})
	full, _ := dePush(t, c, bin, envdir, store)
	c.Pgbench(t, "-n", "-c", "1", "-t", "200")
	delta, _ := dePush(t, c, bin, envdir, store)
	deWantDelta(t, store, delta, full, 1)
	c.Psql(t, "insert into marker values (1, 'end')")
	bbArchiveAll(t, c)
	final := bbStateOf(t, c)

	env := []string{"WALG_FILE_PREFIX=" + store}
	list := bbMust(t, bbExec(t, pgtest.Command(t, env, "/", walg, "backup-list")), "wal-g backup-list")
	out := list.stdout + list.stderr
	if !strings.Contains(out, full) || strings.Contains(out, "_D_") {
		t.Errorf("wal-g backup-list shows a delta or misses the full %s:\n%s", full, out)
	}
	r := walgRestore(t, walg, store, "LATEST")
	if got := bbStateOf(t, r); got != final {
		t.Errorf("WAL-G LATEST restore: %+v, want %+v", got, final)
	}
	r.Stop(t)
}

// TestWALEModeHostWritesOnlyFullBackups: with lzo (the WAL-E compatible
// setting) WALDEN_DELTA_MAX_STEPS is ignored with a warning.
func TestWALEModeHostWritesOnlyFullBackups(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 1, map[string]string{"WALDEN_DELTA_MAX_STEPS": "2", "WALDEN_COMPRESSION": "lzo"})
	for i := 0; i < 2; i++ {
		name, r := dePush(t, c, bin, envdir, store)
		if basebackup.IsDeltaName(name) {
			t.Fatalf("a WAL-E compatible host wrote the delta %s", name)
		}
		if !strings.Contains(r.stderr, "WALDEN_DELTA_MAX_STEPS") {
			t.Errorf("push %d does not warn that WALDEN_DELTA_MAX_STEPS is ignored:\n%s", i, bbTail(r.stderr, 2000))
		}
	}
}

// --- A delta crafted from two real full backups --------------------------
//
// Until backup-push writes deltas, the restore side is proven on real data
// by turning a later full backup into a delta of an earlier one, with the
// page rule of DELTA.md, through the real codec and store.

var deRelRe = regexp.MustCompile(`^(base/[0-9]+/|global/|pg_tblspc/[0-9]+/[^/]+/[0-9]+/)[0-9]+(\.[0-9]+)?$`)

type deMember struct {
	hdr  *tar.Header
	data []byte
}

// deReadBackup decodes every partition of a backup.
func deReadBackup(t *testing.T, st storage.Store, name string, s *basebackup.Sentinel) []deMember {
	t.Helper()
	var out []deMember
	for _, p := range s.Walden.Partitions {
		key := basebackup.PartitionDir(name) + p.Name
		rc, err := st.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		br, err := blob.NewReader(key, rc, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(br)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, deMember{h, data})
		}
		br.Close()
		rc.Close()
	}
	return out
}

func dePut(t *testing.T, st storage.Store, key string, data []byte) {
	t.Helper()
	if err := st.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func deEncode(t *testing.T, raw []byte) []byte {
	var out bytes.Buffer
	w, err := (blob.Format{Codec: codec.LZ4{}}).NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(raw)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func deSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// deWriteList stores a file list and returns what the sentinel records.
func deWriteList(t *testing.T, st storage.Store, name string, fl basebackup.FileList) *basebackup.FilesInfo {
	raw, _ := json.Marshal(fl)
	stored := deEncode(t, raw)
	dePut(t, st, basebackup.FilesKey(name, ".lz4"), stored)
	return &basebackup.FilesInfo{Name: basebackup.FilesObject + ".lz4", StoredSize: int64(len(stored)), SHA256: deSum(stored), Count: len(fl.Files)}
}

// deCraftDelta turns the full backup child into a delta of the full
// backup parent (both lz4, unencrypted), removes child, and returns the
// delta's name. parent gains a file list if it has none.
func deCraftDelta(t *testing.T, store, parent, child string) string {
	t.Helper()
	st := file.New(store)
	ps := deSentinel(t, store, parent)
	pm := deReadBackup(t, st, parent, ps)
	psize := map[string]int64{}
	if ps.Walden.Files == nil {
		fl := basebackup.FileList{FormatVersion: 1, BlockSize: 8192}
		for _, m := range pm {
			if m.hdr.Typeflag == tar.TypeReg {
				fl.Files = append(fl.Files, basebackup.FileEntry{Path: m.hdr.Name, Size: m.hdr.Size, Kind: basebackup.FileWhole, Base: parent})
			}
		}
		ps.Walden.Files = deWriteList(t, st, parent, fl)
		ps.Walden.FormatVersion = 2
		data, err := ps.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		dePut(t, st, basebackup.SentinelKey(parent), data)
	}
	for _, m := range pm {
		psize[m.hdr.Name] = m.hdr.Size
	}
	psent, err := os.ReadFile(filepath.Join(store, basebackup.SentinelKey(parent)))
	if err != nil {
		t.Fatal(err)
	}
	pstart, err := basebackup.ParseLSN(ps.Walden.StartLSN)
	if err != nil {
		t.Fatal(err)
	}

	cs := deSentinel(t, store, child)
	cm := deReadBackup(t, st, child, cs)
	name := basebackup.DeltaName(child, parent)
	fl := basebackup.FileList{FormatVersion: 1, BlockSize: 8192}
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, m := range cm {
		h, data := *m.hdr, m.data
		if h.Typeflag == tar.TypeReg {
			old, inParent := psize[h.Name]
			if inParent && deRelRe.MatchString(h.Name) && h.Size%8192 == 0 {
				data = deltaPages(data, pstart, old)
				h.Name += basebackup.DeltaMemberSuffix
				h.Size = int64(len(data))
				fl.Files = append(fl.Files, basebackup.FileEntry{Path: m.hdr.Name, Size: m.hdr.Size, Kind: basebackup.FilePages, Base: parent})
			} else {
				fl.Files = append(fl.Files, basebackup.FileEntry{Path: m.hdr.Name, Size: m.hdr.Size, Kind: basebackup.FileWhole, Base: name})
			}
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	sort.Slice(fl.Files, func(i, j int) bool { return fl.Files[i].Path < fl.Files[j].Path })
	stored := deEncode(t, raw.Bytes())
	pn := basebackup.PartitionName(0, ".lz4")
	dePut(t, st, basebackup.PartitionDir(name)+pn, stored)
	v, _ := os.ReadFile(filepath.Join(store, basebackup.VersionKey(child)))
	dePut(t, st, basebackup.VersionKey(name), v)
	cs.Walden.Partitions = []basebackup.PartitionInfo{{Name: pn, StoredSize: int64(len(stored)), SHA256: deSum(stored), ExpandedSize: int64(raw.Len()), Members: len(cm)}}
	cs.Walden.Files = deWriteList(t, st, name, fl)
	cs.Walden.FormatVersion = 2
	cs.Walden.Delta = &basebackup.DeltaInfo{Parent: parent, ParentSentinelSHA256: deSum(psent), ParentStartLSN: ps.Walden.StartLSN, Full: parent, Step: 1}
	data, err := cs.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dePut(t, st, basebackup.DeltaSentinelKey(name), data)
	os.Remove(filepath.Join(store, basebackup.SentinelKey(child)))
	os.RemoveAll(filepath.Join(store, "basebackups_005", child))
	pgtest.Chown(t, store)
	return name
}

// deltaPages is DELTA.md's page-delta member of a relation file: the
// pages at or after the parent's start LSN, new, torn, or beyond the
// parent's size.
func deltaPages(data []byte, pstart basebackup.LSN, parentSize int64) []byte {
	const blk = 8192
	var blocks []uint32
	var pages []byte
	for b := 0; b*blk < len(data); b++ {
		pg := data[b*blk : (b+1)*blk]
		lsn := basebackup.LSN(uint64(binary.LittleEndian.Uint32(pg[0:]))<<32 | uint64(binary.LittleEndian.Uint32(pg[4:])))
		lower, upper, special := binary.LittleEndian.Uint16(pg[12:]), binary.LittleEndian.Uint16(pg[14:]), binary.LittleEndian.Uint16(pg[16:])
		torn := lower < 24 || lower > upper || upper > special || int(special) > blk
		if lsn >= pstart || upper == 0 || torn || int64(b+1)*blk > parentSize {
			blocks = append(blocks, uint32(b))
			pages = append(pages, pg...)
		}
	}
	var out bytes.Buffer
	out.WriteString(basebackup.DeltaMagic)
	binary.Write(&out, binary.LittleEndian, uint32(blk))
	binary.Write(&out, binary.LittleEndian, uint32(len(blocks)))
	binary.Write(&out, binary.LittleEndian, uint64(len(data)))
	for _, b := range blocks {
		binary.Write(&out, binary.LittleEndian, b)
	}
	out.Write(pages)
	return out.Bytes()
}

// TestCraftedDeltaOfRealBackupsRestoresExactly: two real backups under
// pgbench load, the second made a delta of the first with DELTA.md's page
// rule; backup-fetch of the delta plus replay reaches the primary's data,
// amcheck finds nothing, and walden restore --target-time picks the delta.
func TestCraftedDeltaOfRealBackupsRestoresExactly(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 3, nil)
	full, _ := dePush(t, c, bin, envdir, store)
	c.Pgbench(t, "-n", "-c", "2", "-t", "500")
	c.Psql(t, "create table dropped as select generate_series(1, 50000) g")
	c.Psql(t, "create table later as select generate_series(1, 1000) g")
	second, _ := dePush(t, c, bin, envdir, store)
	if basebackup.IsDeltaName(second) {
		t.Fatalf("%s is already a delta", second)
	}
	c.Psql(t, "drop table dropped")
	c.Psql(t, "insert into marker values (1, 'after-second')")
	at := deData(t, c)
	time.Sleep(1100 * time.Millisecond)
	when := c.Psql(t, "select now()::text")
	time.Sleep(1100 * time.Millisecond)
	c.Pgbench(t, "-n", "-c", "1", "-t", "200")
	c.Psql(t, "insert into marker values (2, 'end')")
	bbArchiveAll(t, c)
	final := deData(t, c)

	delta := deCraftDelta(t, store, full, second)
	s := deSentinel(t, store, delta)
	var fullBytes, deltaBytes int64
	for _, p := range s.Walden.Partitions {
		deltaBytes += p.StoredSize
	}
	for _, p := range deSentinel(t, store, full).Walden.Partitions {
		fullBytes += p.StoredSize
	}
	t.Logf("full %s: %d bytes stored; crafted delta %s: %d bytes", full, fullBytes, delta, deltaBytes)

	r := bbFetchAndReplay(t, bin, envdir, delta)
	if got := deData(t, r); got != final {
		t.Errorf("restore of the delta: %s, want %s", got, final)
	}
	deAmcheck(t, r)
	r.Stop(t)

	r2, log := bbRestoreToTime(t, bin, envdir, when)
	if !strings.Contains(log, "Starting from "+delta+".") {
		t.Errorf("restore did not start from %s:\n%s", delta, bbTail(log, 2000))
	}
	if got := deData(t, r2); got != at {
		t.Errorf("restore to %s: %s, want %s", when, got, at)
	}
	r2.Stop(t)
}
