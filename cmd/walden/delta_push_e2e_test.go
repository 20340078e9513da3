package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/internal/pgtest"
)

var dpBackupRe = regexp.MustCompile(`Backup (base_[0-9A-F]{24}_[0-9]{8}(?:_D_[0-9A-F]{24}_[0-9]{8})?)(?: \(delta of (base_\S+)\))?: \d+ bytes read in [0-9.]+ s \([0-9.]+ MiB/s\), (\d+) bytes stored`)

type dpPush struct {
	name, parent string
	stored       int64
	stderr       string
}

// dpPushUnderLoad runs backup-push (with args) while pgbench writes at a
// low rate, so that few pages change during the backup.
func dpPushUnderLoad(t *testing.T, c *pgtest.Cluster, bin, envdir string, args ...string) dpPush {
	t.Helper()
	load := pgtest.Command(t, c.Env(), c.Base, filepath.Join(c.BinDir, "pgbench"), "-n", "-c", "1", "-R", "20", "-T", "3")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	r := bbWalden(t, bin, envdir, c.Env(), append([]string{"backup-push", c.Dir}, args...)...)
	if err := load.Wait(); err != nil {
		t.Fatalf("pgbench: %v", err)
	}
	bbMust(t, r, "backup-push")
	m := dpBackupRe.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no backup line in:\n%s", bbTail(r.stderr, 3000))
	}
	n, _ := strconv.ParseInt(m[3], 10, 64)
	return dpPush{name: m[1], parent: m[2], stored: n, stderr: r.stderr}
}

// dpDelta reads the delta part of a backup's sentinel from the file store.
func dpDelta(t *testing.T, store, name string) (step int, parent, full string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(store, "basebackups_005", name+"_walden_delta_sentinel.json"))
	if err != nil {
		t.Fatalf("sentinel of delta %s: %v", name, err)
	}
	var s struct {
		Walden struct {
			FormatVersion int `json:"format_version"`
			Files         *struct {
				Count int `json:"count"`
			} `json:"files"`
			Delta *struct {
				Parent string `json:"parent"`
				Full   string `json:"full"`
				Step   int    `json:"step"`
			} `json:"delta"`
		} `json:"walden"`
	}
	if err := json.Unmarshal(data, &s); err != nil || s.Walden.Delta == nil || s.Walden.Files == nil || s.Walden.FormatVersion != 2 {
		t.Fatalf("sentinel of delta %s: %v\n%s", name, err, data)
	}
	return s.Walden.Delta.Step, s.Walden.Delta.Parent, s.Walden.Delta.Full
}

type dpEntry struct {
	Size int64  `json:"size"`
	Kind string `json:"kind"`
	Base string `json:"base"`
}

// dpFileList reads a backup's walden_files.json.lz4 from the file store.
func dpFileList(t *testing.T, store, name string) map[string]dpEntry {
	t.Helper()
	f, err := os.Open(filepath.Join(store, "basebackups_005", name, "walden_files.json.lz4"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := codec.ByKey("x.lz4").NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var fl struct {
		Files []struct {
			Path string `json:"path"`
			dpEntry
		} `json:"files"`
	}
	if err := json.NewDecoder(r).Decode(&fl); err != nil {
		t.Fatalf("file list of %s: %v", name, err)
	}
	out := map[string]dpEntry{}
	for _, e := range fl.Files {
		out[e.Path] = e.dpEntry
	}
	return out
}

func dpFileSize(t *testing.T, pgdata, rel string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(pgdata, rel))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestDeltaPushChainsFullThenDeltasThenFull: with WALDEN_DELTA_MAX_STEPS=2
// pushes under light pgbench load give a full backup, a delta of it, a
// delta of that, then a full again; a delta of a small change stores a
// small fraction of the full; --full forces a full; the store never holds
// a WAL-E sentinel for a delta, and backup-list keeps WAL-E's format. Then
// the same host in WAL-E mode (lzo) writes only fulls and warns once.
func TestDeltaPushChainsFullThenDeltasThenFull(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 10, map[string]string{"WALDEN_DELTA_MAX_STEPS": "2"})
	tsdir := filepath.Join(bbScratch(t), "ts")
	os.Mkdir(tsdir, 0o700)
	pgtest.Chown(t, tsdir)
	c.Psql(t, "create tablespace dpts location '"+tsdir+"'")
	c.Psql(t, "create table in_ts tablespace dpts as select g id, repeat('x', 200) pad from generate_series(1, 20000) g")
	c.Psql(t, "create table shrinks as select g id from generate_series(1, 200000) g")
	tsRel := c.Psql(t, "select pg_relation_filepath('in_ts')")
	shrinkRel := c.Psql(t, "select pg_relation_filepath('shrinks')")

	full := dpPushUnderLoad(t, c, bin, envdir)
	if full.parent != "" || strings.Contains(full.name, "_D_") {
		t.Fatalf("first push is not full: %s", full.name)
	}
	if !strings.Contains(full.stderr, "taking a full backup: there is no backup in the store to build on") {
		t.Errorf("first push does not say why it is full:\n%s", bbTail(full.stderr, 2000))
	}
	c.Psql(t, "update pgbench_accounts set abalance = abalance + 1 where aid % 5000 = 0")
	c.Psql(t, "update in_ts set pad = 'y' where id = 7")
	c.Psql(t, "create table added as select g id from generate_series(1, 1000) g")
	addedRel := c.Psql(t, "select pg_relation_filepath('added')")
	c.Psql(t, "delete from shrinks where id > 1000")
	c.Psql(t, "vacuum shrinks") // truncates the file
	d1 := dpPushUnderLoad(t, c, bin, envdir)
	if d1.parent != full.name || !strings.HasPrefix(d1.name, d1.name[:38]+"_D_") || !strings.HasSuffix(d1.name, strings.TrimPrefix(full.name, "base")) {
		t.Fatalf("second push %s (parent %q) is not a delta of %s", d1.name, d1.parent, full.name)
	}
	if step, parent, f := dpDelta(t, store, d1.name); step != 1 || parent != full.name || f != full.name {
		t.Fatalf("first delta: step %d parent %s full %s", step, parent, f)
	}
	t.Logf("full %d bytes stored, delta of 1 row in 5000 plus light load %d", full.stored, d1.stored)
	if d1.stored*100 >= full.stored*30 {
		t.Errorf("delta of a small change stores %d bytes, the full %d (want < 30%%)", d1.stored, full.stored)
	}
	// The delta's file list: a relation in a tablespace is page-diffed, a
	// table created since the full is whole in the delta, a truncated one
	// has its new size, and the sizes add up with what the cluster holds.
	files := dpFileList(t, store, d1.name)
	for _, w := range []struct{ path, kind, base string }{
		{tsRel, "pages", full.name}, {addedRel, "whole", d1.name}, {shrinkRel, "pages", full.name},
		{"global/pg_control", "whole", d1.name}, {"backup_label", "whole", d1.name},
	} {
		f, ok := files[w.path]
		if !ok || f.Kind != w.kind || f.Base != w.base {
			t.Errorf("delta file list: %s = %+v, want kind %s base %s", w.path, f, w.kind, w.base)
		}
	}
	if !strings.HasPrefix(tsRel, "pg_tblspc/") {
		t.Errorf("relation in a tablespace at %s", tsRel)
	}
	if f := files[shrinkRel]; f.Size != dpFileSize(t, c.Dir, shrinkRel) || f.Size >= dpFileList(t, store, full.name)[shrinkRel].Size {
		t.Errorf("truncated relation: size %d in the delta, %d on disk, %d in the full", f.Size, dpFileSize(t, c.Dir, shrinkRel), dpFileList(t, store, full.name)[shrinkRel].Size)
	}
	d2 := dpPushUnderLoad(t, c, bin, envdir)
	if step, parent, f := dpDelta(t, store, d2.name); d2.parent != d1.name || step != 2 || parent != d1.name || f != full.name {
		t.Fatalf("third push %s: step %d parent %s full %s", d2.name, step, parent, f)
	}
	full2 := dpPushUnderLoad(t, c, bin, envdir)
	if full2.parent != "" || strings.Contains(full2.name, "_D_") ||
		!strings.Contains(full2.stderr, "the chain of "+full.name+" has reached WALDEN_DELTA_MAX_STEPS=2") {
		t.Fatalf("fourth push %s is not a full with its reason:\n%s", full2.name, bbTail(full2.stderr, 2000))
	}
	d3 := dpPushUnderLoad(t, c, bin, envdir)
	if d3.parent != full2.name {
		t.Fatalf("fifth push %s is not a delta of %s", d3.name, full2.name)
	}
	forced := dpPushUnderLoad(t, c, bin, envdir, "--full")
	if forced.parent != "" || strings.Contains(forced.name, "_D_") || !strings.Contains(forced.stderr, "taking a full backup: --full was given") {
		t.Fatalf("--full push %s is not full", forced.name)
	}

	fulls := map[string]bool{full.name: true, full2.name: true, forced.name: true}
	for _, k := range bbStoreKeys(t, store) {
		name, ok := strings.CutSuffix(strings.TrimPrefix(k, "basebackups_005/"), "_backup_stop_sentinel.json")
		if ok && !fulls[name] {
			t.Errorf("the store holds a WAL-E sentinel for %s", k)
		}
	}
	for n := range fulls {
		if _, err := os.Stat(filepath.Join(store, "basebackups_005", n+"_backup_stop_sentinel.json")); err != nil {
			t.Errorf("full backup %s: %v", n, err)
		}
		if _, err := os.Stat(filepath.Join(store, "basebackups_005", n, "walden_files.json.lz4")); err != nil {
			t.Errorf("full backup %s has no file list: %v", n, err)
		}
	}

	// backup-list: WAL-E's header and seven tab-separated columns, CRLF.
	list := bbMust(t, bbWalden(t, bin, envdir, nil, "backup-list"), "backup-list")
	lines := strings.Split(strings.TrimSuffix(list.stdout, "\r\n"), "\r\n")
	if lines[0] != "name\tlast_modified\texpanded_size_bytes\twal_segment_backup_start\twal_segment_offset_backup_start\twal_segment_backup_stop\twal_segment_offset_backup_stop" {
		t.Fatalf("backup-list header: %q", lines[0])
	}
	rowRe := regexp.MustCompile(`^(base_[0-9A-F]{24}_[0-9]{8}\S*)\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\t\t([0-9A-F]{24})\t([0-9]{8})\t\t$`)
	seen := map[string]bool{}
	for _, l := range lines[1:] {
		m := rowRe.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("backup-list row not in WAL-E's format: %q", l)
			continue
		}
		if !strings.HasPrefix(m[1], "base_"+m[3]+"_"+m[4]) {
			t.Errorf("row %q: start columns do not match the name", l)
		}
		seen[m[1]] = true
	}
	for n := range fulls {
		if !seen[n] {
			t.Errorf("backup-list lacks full backup %s:\n%s", n, list.stdout)
		}
	}
	if strings.Contains(list.stdout, "\n") && !strings.Contains(list.stdout, "\r\n") {
		t.Error("backup-list lines do not end in CRLF")
	}

	// WAL-E mode on the same host: only fulls, one warning per run.
	bbEnvdir(t, envdir, map[string]string{"WALDEN_COMPRESSION": "lzo"})
	for i := 0; i < 2; i++ {
		r := dpPushUnderLoad(t, c, bin, envdir)
		if r.parent != "" || strings.Contains(r.name, "_D_") {
			t.Fatalf("WAL-E mode push %d made a delta: %s", i, r.name)
		}
		if n := strings.Count(r.stderr, "WALDEN_DELTA_MAX_STEPS is ignored: WALDEN_COMPRESSION=lzo"); n != 1 {
			t.Errorf("WAL-E mode push %d warned %d times:\n%s", i, n, bbTail(r.stderr, 2000))
		}
		if !strings.Contains(r.stderr, "WARNING") {
			t.Errorf("the WAL-E mode notice is not a WARNING")
		}
	}
}
