package basebackup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// fakeSession stands in for PostgreSQL.
type fakeSession struct {
	started, stopped, aborted bool
}

func (f *fakeSession) start(context.Context, string) (startInfo, error) {
	f.started = true
	sysid := uint64(42)
	return startInfo{LSN: 0x3000028, File: "000000010000000000000003", Offset: 40, Timeline: 1,
		Version: "PostgreSQL 15.18 test", VersionNum: 150018, SysID: &sysid, SegSize: DefaultSegmentSize}, nil
}

func (f *fakeSession) stop(context.Context) (stopInfo, error) {
	f.stopped = true
	return stopInfo{LSN: 0x3000100, File: "000000010000000000000003", Offset: 256,
		Label: "START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\n", TablespaceMap: "16385 /old/ts\n"}, nil
}

func (f *fakeSession) abort() { f.aborted = true }
func (f *fakeSession) close() {}

// fakeCluster builds a data directory with a bit of everything the file
// selection rules care about, and a tablespace outside it.
func fakeCluster(t *testing.T) (pgdata, ts string) {
	t.Helper()
	dir := t.TempDir()
	pgdata, ts = filepath.Join(dir, "data"), filepath.Join(dir, "ts")
	rnd := rand.New(rand.NewSource(1))
	blob := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rnd.Intn(4)) // compressible, not trivially
		}
		return string(b)
	}
	files := map[string]string{
		"PG_VERSION":                       "15\n",
		"global/pg_control":                blob(8192),
		"global/1262":                      blob(8192),
		"base/1/1259":                      blob(3 << 20),
		"base/1/1249":                      blob(700 << 10),
		"base/1/16384":                     "unlogged main fork",
		"base/1/16384_init":                "",
		"base/1/pg_internal.init":          "cache",
		"base/1/t3_5000":                   "temp rel",
		"pg_wal/000000010000000000000001":  blob(1000),
		"pg_wal/archive_status/x.ready":    "",
		"pg_replslot/s1/state":             "slot",
		"pg_stat_tmp/global.stat":          "stats",
		"base/pgsql_tmp/pgsql_tmp1.0":      "sort",
		"postmaster.pid":                   "123",
		"postmaster.opts":                  "opts",
		"postgresql.conf":                  "port = 5432\n",
		"pg_hba.conf":                      "local all all trust\n",
		"postgresql.auto.conf":             "# auto\n",
		"backup_label":                     "stale label of someone else",
		"pg_xact/0000":                     blob(8192),
		strings.Repeat("n", 120) + "/file": "long name",
	}
	for name, body := range files {
		p := filepath.Join(pgdata, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(pgdata, 0o700)
	for _, d := range []string{"pg_notify", "pg_snapshots", "pg_tblspc"} {
		os.MkdirAll(filepath.Join(pgdata, d), 0o700)
	}
	os.Symlink("PG_VERSION", filepath.Join(pgdata, "link_to_version"))
	tsFile := filepath.Join(ts, "PG_15_202209061", "1", "16386")
	os.MkdirAll(filepath.Dir(tsFile), 0o700)
	os.WriteFile(tsFile, []byte(blob(300<<10)), 0o600)
	os.MkdirAll(filepath.Join(ts, "PG_15_202209061", "empty"), 0o700)
	if err := os.Symlink(ts, filepath.Join(pgdata, "pg_tblspc", "16385")); err != nil {
		t.Fatal(err)
	}
	return pgdata, ts
}

func pushFake(t *testing.T, st storage.Store, p storage.Prefix, f blob.Format, pgdata string) (Result, *fakeSession) {
	t.Helper()
	log, _ := testLogger()
	sess := &fakeSession{}
	putWAL(t, st, "000000010000000000000003")
	res, err := Push(context.Background(), PushOptions{Store: st, Prefix: p, Format: f, Log: log, PGData: pgdata,
		Concurrency: 3, PartitionSize: 1 << 20, sess: sess})
	if err != nil {
		t.Fatal(err)
	}
	return res, sess
}

func TestPushThenFetchRestoresTheSelectionForEveryCodec(t *testing.T) {
	for _, c := range codec.All {
		t.Run(c.Name(), func(t *testing.T) {
			pgdata, ts := fakeCluster(t)
			st, p, storeDir := testStore(t)
			res, sess := pushFake(t, st, p, blob.Format{Codec: c}, pgdata)
			if !sess.started || !sess.stopped || sess.aborted {
				t.Fatalf("session %+v", sess)
			}
			if res.Name != "base_000000010000000000000003_00000040" || res.Partitions < 4 {
				t.Fatalf("result %+v", res)
			}
			// The sentinel records each stored partition's size and SHA-256.
			bs, _ := List(context.Background(), st)
			if len(bs) != 1 {
				t.Fatalf("backups %v", bs)
			}
			b := bs[0]
			if err := b.Load(context.Background(), st); err != nil {
				t.Fatal(err)
			}
			m := b.Sentinel.Walden
			if m == nil || m.Compression != c.Name() || len(m.Partitions) != res.Partitions {
				t.Fatalf("manifest %+v", m)
			}
			for _, part := range m.Partitions {
				data, err := os.ReadFile(filepath.Join(storeDir, PartitionDir(res.Name), part.Name))
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(data)
				if int64(len(data)) != part.StoredSize || hex.EncodeToString(sum[:]) != part.SHA256 {
					t.Fatalf("%s: manifest %d/%s, stored %d bytes", part.Name, part.StoredSize, part.SHA256, len(data))
				}
			}
			if s := b.Sentinel; s.Spec == nil || len(s.Spec.Tablespaces) != 1 || s.Spec.Locations["16385"].Loc != ts+"/" ||
				s.StopOffset != "00000256" || *s.LSN != 0x3000028 || s.ExpandedSizeBytes != res.Size {
				t.Fatalf("sentinel %+v spec %+v", s, s.Spec)
			}
			if v, _ := os.ReadFile(filepath.Join(storeDir, VersionKey(res.Name))); string(v) != "PostgreSQL 15.18 test" {
				t.Fatalf("extended_version.txt = %q", v)
			}

			// Restore with the tablespace moved elsewhere.
			dir := t.TempDir()
			target, newTS := filepath.Join(dir, "restored"), filepath.Join(dir, "newts")
			spec := filepath.Join(dir, "spec.json")
			os.WriteFile(spec, []byte(`{"tablespaces": ["16385"], "16385": {"loc": "`+newTS+`/", "link": "pg_tblspc/16385"}}`), 0o600)
			log, _ := testLogger()
			fr, err := Fetch(context.Background(), FetchOptions{Store: st, Prefix: p, Log: log, PGData: target, Backup: "LATEST", Concurrency: 4, RestoreSpec: spec})
			if err != nil {
				t.Fatal(err)
			}
			if fr.Backup.Name != res.Name {
				t.Fatalf("restored %s", fr.Backup.Name)
			}
			same := []string{"PG_VERSION", "global/pg_control", "global/1262", "base/1/1259", "base/1/1249", "base/1/16384_init",
				"postgresql.conf", "pg_hba.conf", "postgresql.auto.conf", "pg_xact/0000", strings.Repeat("n", 120) + "/file"}
			for _, f := range same {
				want, _ := os.ReadFile(filepath.Join(pgdata, f))
				got, err := os.ReadFile(filepath.Join(target, f))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s differs after restore (%v)", f, err)
				}
			}
			gone := []string{"base/1/16384", "base/1/pg_internal.init", "base/1/t3_5000", "pg_wal/000000010000000000000001",
				"pg_wal/archive_status/x.ready", "pg_replslot/s1", "pg_stat_tmp/global.stat", "base/pgsql_tmp/pgsql_tmp1.0",
				"postmaster.pid", "postmaster.opts", "tablespace_map.old"}
			for _, f := range gone {
				if _, err := os.Lstat(filepath.Join(target, f)); err == nil {
					t.Errorf("%s should not have been backed up", f)
				}
			}
			for _, d := range []string{"pg_wal/archive_status", "pg_replslot", "pg_stat_tmp", "base/pgsql_tmp", "pg_notify", "pg_snapshots"} {
				if fi, err := os.Stat(filepath.Join(target, d)); err != nil || !fi.IsDir() {
					t.Errorf("directory %s missing", d)
				}
			}
			if l, _ := os.ReadFile(filepath.Join(target, "backup_label")); !strings.HasPrefix(string(l), "START WAL LOCATION") {
				t.Errorf("backup_label = %q (want the one from the stop call)", l)
			}
			if l, _ := os.ReadFile(filepath.Join(target, "tablespace_map")); string(l) != "16385 /old/ts\n" {
				t.Errorf("tablespace_map = %q", l)
			}
			if l, _ := os.Readlink(filepath.Join(target, "link_to_version")); l != "PG_VERSION" {
				t.Errorf("symlink = %q", l)
			}
			if got, _ := os.ReadFile(filepath.Join(newTS, "PG_15_202209061", "1", "16386")); len(got) != 300<<10 {
				t.Errorf("tablespace file has %d bytes", len(got))
			}
			if fi, err := os.Stat(filepath.Join(newTS, "PG_15_202209061", "empty")); err != nil || !fi.IsDir() {
				t.Errorf("empty tablespace directory missing")
			}
			if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o700 {
				t.Errorf("data directory mode %v", fi.Mode())
			}
		})
	}
}

func TestFetchOfACorruptPartitionFailsAndLeavesNoPgControl(t *testing.T) {
	pgdata, _ := fakeCluster(t)
	st, p, storeDir := testStore(t)
	res, _ := pushFake(t, st, p, blob.Format{Codec: codec.LZ4{}}, pgdata)
	part := filepath.Join(storeDir, PartitionKey(res.Name, 0, ".lz4"))
	data, _ := os.ReadFile(part)
	data[len(data)/2] ^= 0xff
	os.WriteFile(part, data, 0o644)
	target := filepath.Join(t.TempDir(), "r")
	log, _ := testLogger()
	_, err := Fetch(context.Background(), FetchOptions{Store: st, Prefix: p, Log: log, PGData: target, Backup: res.Name, Concurrency: 2, BlindRestore: true})
	if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), "part_00000000") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "global", "pg_control")); err == nil {
		t.Fatal("pg_control written although the restore failed")
	}
}

func TestFetchRefusesRunningClusterAndNonEmptyTarget(t *testing.T) {
	st, p, dir := testStore(t)
	putKeys(t, st, dir, SentinelKey(nameA))
	log, _ := testLogger()
	try := func(setup func(string)) error {
		target := t.TempDir()
		setup(target)
		_, err := Fetch(context.Background(), FetchOptions{Store: st, Prefix: p, Log: log, PGData: target, Backup: "LATEST"})
		return err
	}
	if err := try(func(d string) { os.WriteFile(filepath.Join(d, "postmaster.pid"), nil, 0o600) }); err == nil || !strings.Contains(err.Error(), "live data directory") {
		t.Errorf("running cluster: %v", err)
	}
	if err := try(func(d string) { os.WriteFile(filepath.Join(d, "PG_VERSION"), nil, 0o600) }); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("data directory present: %v", err)
	}
	if err := try(func(d string) { os.Mkdir(filepath.Join(d, "base"), 0o700) }); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("other content: %v", err)
	}
	// Only configuration and tablespace links: accepted (then fails later
	// on this fake backup, which has no partitions).
	err := try(func(d string) {
		os.WriteFile(filepath.Join(d, "postgresql.conf"), nil, 0o600)
		os.WriteFile(filepath.Join(d, "recovery.signal"), nil, 0o600)
		os.Mkdir(filepath.Join(d, "pg_tblspc"), 0o700)
		os.Symlink("/nowhere", filepath.Join(d, "pg_tblspc", "1"))
	})
	if err == nil || strings.Contains(err.Error(), "not empty") {
		t.Errorf("configuration-only target: %v", err)
	}
	if err := try(func(string) {}); err == nil {
		t.Error("a backup without partitions restored")
	}
	_, err = Fetch(context.Background(), FetchOptions{Store: st, Prefix: p, Log: log, PGData: t.TempDir(), Backup: nameB})
	if err == nil || !strings.Contains(err.Error(), "no backups found for fetching") {
		t.Errorf("missing backup: %v", err)
	}
}

func TestInterruptedPushEndsTheBackupAndWritesNoSentinel(t *testing.T) {
	pgdata, _ := fakeCluster(t)
	st, p, _ := testStore(t)
	log, _ := testLogger()
	sess := &fakeSession{}
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	go func() {
		time.Sleep(300 * time.Millisecond)
		cancel()
	}()
	_, err := Push(ctx, PushOptions{Store: st, Prefix: p, Format: blob.Format{Codec: codec.LZ4{}}, Log: log, PGData: pgdata,
		Concurrency: 2, PartitionSize: 1 << 20, RateLimit: 1 << 20, sess: sess,
		Progress: func(Progress) { calls.Add(1) }})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("err = %v", err)
	}
	if !sess.aborted || sess.stopped {
		t.Fatalf("session %+v: the backup must be aborted, not stopped", sess)
	}
	if bs, _ := List(context.Background(), st); len(bs) != 0 {
		t.Fatalf("a sentinel was written: %v", bs)
	}
}

func TestPushRefusesADirectoryThatIsNotACluster(t *testing.T) {
	st, p, _ := testStore(t)
	log, _ := testLogger()
	_, err := Push(context.Background(), PushOptions{Store: st, Prefix: p, Format: blob.Format{Codec: codec.LZ4{}}, Log: log, PGData: t.TempDir(), sess: &fakeSession{}})
	if err == nil || !strings.Contains(err.Error(), "not a PostgreSQL data directory") {
		t.Fatalf("err = %v", err)
	}
}

func TestVanishedFileIsSkipped(t *testing.T) {
	var b bytes.Buffer
	var read atomic.Int64
	tw := newTarWriter(&b, nil, &read, newIDNames(t.TempDir()))
	if err := tw.add(context.Background(), member{name: "gone", path: filepath.Join(t.TempDir(), "gone"), kind: kindFile, size: 10}); err != nil {
		t.Fatal(err)
	}
	if tw.members != 0 {
		t.Fatal("a vanished file was stored")
	}
}

func TestOneBackupPerDataDirectory(t *testing.T) {
	t.Setenv("WALDEN_LOCK_DIR", t.TempDir())
	pgdata := t.TempDir()
	unlock, err := Lock(pgdata)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Lock(pgdata + "/.")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another base backup of "+pgdata+" is running (pid ") {
		t.Fatalf("second lock: %v", err)
	}
	other, err := Lock(t.TempDir())
	if err != nil {
		t.Fatalf("another data directory: %v", err)
	}
	other()
	unlock()
	unlock2, err := Lock(pgdata)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	unlock2()
}

func TestRestoreSpecSourceRestoresIntoTheGivenDirectory(t *testing.T) {
	pgdata, ts := fakeCluster(t)
	st, p, _ := testStore(t)
	pushFake(t, st, p, blob.Format{Codec: codec.LZ4{}}, pgdata)
	os.RemoveAll(ts) // a new host: the tablespace directory does not exist yet
	target := filepath.Join(t.TempDir(), "elsewhere")
	log, _ := testLogger()
	if _, err := Fetch(context.Background(), FetchOptions{Store: st, Prefix: p, Log: log, PGData: target, Backup: "LATEST", RestoreSpec: "SOURCE"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "PG_VERSION")); err != nil {
		t.Fatal("SOURCE did not restore into the directory given (WAL-E used the backup's own)")
	}
	if l, _ := os.Readlink(filepath.Join(target, "pg_tblspc", "16385")); l != ts {
		t.Fatalf("tablespace link -> %q, want %q", l, ts)
	}
	if got, _ := os.ReadFile(filepath.Join(ts, "PG_15_202209061", "1", "16386")); len(got) != 300<<10 {
		t.Fatalf("tablespace file has %d bytes", len(got))
	}
}

func TestMissingTablespaceLinksAndSpecFileAreWALEErrors(t *testing.T) {
	pgdata, _ := fakeCluster(t)
	st, p, _ := testStore(t)
	pushFake(t, st, p, blob.Format{Codec: codec.LZ4{}}, pgdata)
	log, _ := testLogger()
	_, err := Fetch(context.Background(), FetchOptions{Store: st, Prefix: p, Log: log, PGData: t.TempDir(), Backup: "LATEST", RestoreSpec: "/no/such/spec.json"})
	if err == nil || !strings.Contains(err.Error(), "Restore specification does not exist: File not found: /no/such/spec.json") {
		t.Fatalf("missing spec file: %v", err)
	}
	spec := filepath.Join(t.TempDir(), "spec.json")
	os.WriteFile(spec, []byte(`{"tablespaces": ["16385"], "16385": {"loc": "`+t.TempDir()+`/ts/", "link": "pg_tblspc/16385"}}`), 0o600)
	// A spec with tablespaces but the links removed again: WAL-E's check.
	target := t.TempDir()
	s, _ := restoreSpec(target, spec, nil)
	if err := verifyRestorePaths(s); err == nil || !strings.Contains(err.Error(), "Symlinks for some tablespaces not found or created.") {
		t.Fatalf("verify: %v", err)
	}
}

// putWAL stores an archived segment, as wal-push would have.
func putWAL(t *testing.T, st storage.Store, seg string) {
	t.Helper()
	if err := st.Put(context.Background(), "wal_005/"+seg+".lz4", strings.NewReader("wal"), 3, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestPushWithoutItsWALInTheStoreWritesNoSentinel: the backup's stop
// segment never reaches the store, so after the (bounded) wait the push
// fails and the backup is not listed; a partial segment does not count.
func TestPushWithoutItsWALInTheStoreWritesNoSentinel(t *testing.T) {
	st, p, _ := testStore(t)
	pgdata, _ := fakeCluster(t)
	if err := st.Put(context.Background(), "wal_005/000000010000000000000003.partial.lz4", strings.NewReader("x"), 1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	log, buf := testLogger()
	old := walPollEvery
	walPollEvery = 50 * time.Millisecond
	defer func() { walPollEvery = old }()
	start := time.Now()
	_, err := Push(context.Background(), PushOptions{Store: st, Prefix: p, Format: blob.Format{Codec: codec.LZ4{}}, Log: log, PGData: pgdata,
		Concurrency: 2, PartitionSize: 1 << 20, WALTimeout: 700 * time.Millisecond, sess: &fakeSession{}})
	if err == nil || !strings.Contains(err.Error(), "the WAL this backup needs is not in the store") {
		t.Fatalf("push without WAL: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the wait was not bounded: %s", d)
	}
	if ue, ok := err.(*walelog.UserError); !ok || !strings.Contains(ue.Detail, "000000010000000000000003") {
		t.Errorf("the error does not name the segment: %#v", err)
	}
	if bs, _ := List(context.Background(), st); len(bs) != 0 {
		t.Fatalf("a backup without its WAL is listed: %v", bs)
	}
	if !strings.Contains(buf.String(), "waiting for the backup's WAL to reach the store") {
		t.Errorf("no waiting line:\n%s", buf.String())
	}
}

// TestProgressBytesAreReportedWhileTheFirstPartitionIsRead: the
// Progress callback (the agent's walden_backup_progress_bytes) sees bytes
// read before any partition is finished, not only per partition or per
// log line.
func TestProgressBytesAreReportedWhileTheFirstPartitionIsRead(t *testing.T) {
	pgdata, _ := fakeCluster(t)
	st, p, _ := testStore(t)
	putWAL(t, st, "000000010000000000000003")
	log, _ := testLogger()
	old := progressEvery
	progressEvery = 100 * time.Millisecond
	defer func() { progressEvery = old }()
	var early atomic.Int64
	_, err := Push(context.Background(), PushOptions{Store: st, Prefix: p, Format: blob.Format{Codec: codec.LZ4{}}, Log: log, PGData: pgdata,
		Concurrency: 1, PartitionSize: 1 << 30, RateLimit: 256 << 10, ProgressInterval: time.Hour, sess: &fakeSession{},
		Progress: func(pr Progress) {
			if pr.PartitionsDone == 0 && pr.BytesRead > early.Load() {
				early.Store(pr.BytesRead)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if early.Load() == 0 {
		t.Fatal("no bytes reported before the first partition finished")
	}
}

// TestFetchForceRetriesAfterAFailedFetch: a failed fetch leaves a partial
// directory that a plain retry refuses ("not empty"); --force empties it,
// keeping the operator's postgresql.conf, and the retry restores whole.
func TestFetchForceRetriesAfterAFailedFetch(t *testing.T) {
	pgdata, _ := fakeCluster(t)
	st, p, storeDir := testStore(t)
	res, _ := pushFake(t, st, p, blob.Format{Codec: codec.LZ4{}}, pgdata)
	part := filepath.Join(storeDir, PartitionKey(res.Name, 0, ".lz4"))
	good, _ := os.ReadFile(part)
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff
	os.WriteFile(part, bad, 0o644)
	target := filepath.Join(t.TempDir(), "r")
	os.Mkdir(target, 0o700)
	os.WriteFile(filepath.Join(target, "postgresql.conf"), []byte("# mine\n"), 0o600)
	log, _ := testLogger()
	fetch := func(force bool) error {
		_, err := Fetch(context.Background(), FetchOptions{Store: st, Prefix: p, Log: log, PGData: target, Backup: res.Name, Concurrency: 2, BlindRestore: true, Force: force})
		return err
	}
	if err := fetch(false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("corrupt fetch: %v", err)
	}
	os.WriteFile(part, good, 0o644)
	if err := fetch(false); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("retry without --force: %v", err)
	}
	if err := fetch(true); err != nil {
		t.Fatalf("retry with --force: %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "global", "pg_control")); err != nil {
		t.Fatal("no pg_control after the forced retry")
	}
	if b, _ := os.ReadFile(filepath.Join(target, "postgresql.conf")); string(b) != "# mine\n" {
		t.Fatalf("postgresql.conf replaced: %q", b)
	}
	os.WriteFile(filepath.Join(target, "postmaster.pid"), nil, 0o600)
	if err := fetch(true); err == nil || !strings.Contains(err.Error(), "live data directory") {
		t.Fatalf("--force over a running cluster: %v", err)
	}
}
