package basebackup

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	nameA = "base_000000010000000000000002_00000040"
	nameB = "base_000000010000000000000005_00000040"
	nameC = "base_000000010000000000000009_05780024"
)

func TestListSeesOnlySentinelsAtTheRightDepth(t *testing.T) {
	st, _, dir := testStore(t)
	putKeys(t, st, dir,
		SentinelKey(nameA),
		VersionKey(nameB), PartitionKey(nameB, 0, ".lz4"), // no sentinel: incomplete
		Dir+"junk.json",
		Dir+nameC+"/"+nameC+"_backup_stop_sentinel.json", // too deep
		SentinelKey(nameC),
	)
	bs, err := List(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range bs {
		names = append(names, b.Name)
	}
	if strings.Join(names, " ") != nameA+" "+nameC {
		t.Fatalf("listed %v", names)
	}
}

func TestLatestIsNewestSentinelAndLastInListingOnTies(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bs := []Backup{{Name: nameA, Modified: t0.Add(2 * time.Second)}, {Name: nameB, Modified: t0}, {Name: nameC, Modified: t0.Add(time.Second)}}
	if b, _ := Latest(bs); b.Name != nameA {
		t.Fatalf("latest = %s, want the newest sentinel %s (not the highest position)", b.Name, nameA)
	}
	bs[2].Modified = bs[0].Modified
	if b, _ := Latest(bs); b.Name != nameC {
		t.Fatalf("tie: latest = %s, want the last in listing order", b.Name)
	}
	if _, ok := Latest(nil); ok {
		t.Fatal("latest of nothing")
	}
}

func TestQueryAcceptsLatestAndExactNamesOnly(t *testing.T) {
	bs := []Backup{{Name: nameA}, {Name: nameB}}
	if got, ok := Query(bs, nameB); !ok || len(got) != 1 || got[0].Name != nameB {
		t.Fatalf("exact: %v %v", got, ok)
	}
	if got, ok := Query(bs, nameB+"x"); !ok || len(got) != 0 {
		t.Fatalf("longer name matches the pattern but no backup: %v %v", got, ok)
	}
	if _, ok := Query(bs, "yesterday"); ok {
		t.Fatal("invalid query accepted")
	}
}

func TestBackupListRowsAreWALETSVWithCRLF(t *testing.T) {
	st, _, dir := testStore(t)
	putKeys(t, st, dir, SentinelKey(nameA))
	rows, ok, err := ListRows(context.Background(), st, "file", "", false, nil)
	if err != nil || !ok {
		t.Fatal(err, ok)
	}
	var b bytes.Buffer
	if err := WriteTSV(&b, rows); err != nil {
		t.Fatal(err)
	}
	want := "name\tlast_modified\texpanded_size_bytes\twal_segment_backup_start\twal_segment_offset_backup_start\twal_segment_backup_stop\twal_segment_offset_backup_stop\r\n" +
		nameA + "\t2026-01-01T00:00:00\t\t000000010000000000000002\t00000040\t\t\r\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
	_, ok, _ = ListRows(context.Background(), st, "file", "bogus", false, nil)
	if ok {
		t.Fatal("bogus query accepted")
	}
}

func TestBackupListDetailReadsTheSentinelOnTheFileBackend(t *testing.T) {
	st, _, dir := testStore(t)
	putKeys(t, st, dir, PartitionKey(nameA, 0, ".lz4"))
	s := `{"wal_segment_backup_stop": "000000010000000000000003", "wal_segment_offset_backup_stop": "00000100", "expanded_size_bytes": 42, "spec": {"base_prefix": "/d/", "tablespaces": []}}`
	if err := st.Put(context.Background(), SentinelKey(nameA), strings.NewReader(s), int64(len(s)), putOpts()); err != nil {
		t.Fatal(err)
	}
	rows, _, err := ListRows(context.Background(), st, "file", "LATEST", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rows[1]
	if r[2] != "42" || r[5] != "000000010000000000000003" || r[6] != "00000100" {
		t.Fatalf("row %q", r)
	}
}

func TestLastModifiedKeepsEachBackendsTextForm(t *testing.T) {
	t0 := time.Date(2016, 5, 23, 18, 48, 37, 123000000, time.UTC)
	t1 := time.Date(2016, 5, 23, 18, 48, 37, 0, time.FixedZone("x", 3600))
	cases := []struct {
		scheme string
		t      time.Time
		want   string
	}{
		{"s3", t0, "2016-05-23T18:48:37.123Z"},
		{"s3", t1, "2016-05-23T17:48:37.000Z"},
		{"gs", t0, "2016-05-23 18:48:37.123000+00:00"},
		{"gs", t1, "2016-05-23 17:48:37+00:00"},
		{"file", t0.Add(456 * time.Microsecond), "2016-05-23T18:48:37.123456"},
		{"file", t1, "2016-05-23T17:48:37"},
	}
	for _, c := range cases {
		if got := FormatModified(c.scheme, c.t); got != c.want {
			t.Errorf("%s %v: got %s, want %s", c.scheme, c.t, got, c.want)
		}
	}
}

func TestTSVQuotesOnlyFieldsThatNeedIt(t *testing.T) {
	var b bytes.Buffer
	WriteTSV(&b, [][]string{{"a", "b\tc", `d"e`, ""}})
	if got := b.String(); got != "a\t\"b\tc\"\t\"d\"\"e\"\t\r\n" {
		t.Fatalf("got %q", got)
	}
}

// TestBrokenBackupsAreListedButNeverLatest: a sentinel that is not JSON
// and a manifest naming a partition the store lacks make a backup broken:
// backup-list keeps its row (size and stop columns empty) and reports it,
// and LATEST, Resolve and ChooseBackup pick the newest intact backup.
func TestBrokenBackupsAreListedButNeverLatest(t *testing.T) {
	st, _, dir := testStore(t)
	ctx := context.Background()
	good := `{"wal_segment_backup_stop": "000000010000000000000003", "wal_segment_offset_backup_stop": "00000100", "expanded_size_bytes": 42, "spec": {"base_prefix": "/d/", "tablespaces": []}}`
	partial := `{"wal_segment_backup_stop": "000000010000000000000006", "wal_segment_offset_backup_stop": "00000100", "expanded_size_bytes": 42, "spec": {"base_prefix": "/d/", "tablespaces": []},` +
		` "walden": {"format_version": 1, "compression": "lz4", "encryption_key_fingerprint": "", "partitions": [{"name": "part_00000000.tar.lz4"}, {"name": "part_00000001.tar.lz4"}]}}`
	put := func(key, body string, age time.Duration) {
		if err := st.Put(ctx, key, strings.NewReader(body), int64(len(body)), putOpts()); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		os.Chtimes(filepath.Join(dir, key), mt, mt)
	}
	put(PartitionKey(nameA, 0, ".lz4"), "p", 3*time.Hour)
	put(SentinelKey(nameA), good, 3*time.Hour)
	put(PartitionKey(nameB, 0, ".lz4"), "p", 2*time.Hour)
	put(SentinelKey(nameB), partial, 2*time.Hour)
	put(PartitionKey(nameC, 0, ".lz4"), "p", time.Hour)
	put(SentinelKey(nameC), `{"wal_segment_backup_stop": "0000`, time.Hour)

	broken := map[string]string{}
	rows, _, err := ListRows(ctx, st, "file", "", true, func(n, why string) { broken[n] = why })
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("rows %q", rows)
	}
	if !strings.Contains(broken[nameB], "missing") || !strings.Contains(broken[nameC], "not valid") || broken[nameA] != "" {
		t.Fatalf("broken %q", broken)
	}
	for _, r := range rows[1:] {
		if r[0] != nameA && (r[2] != "" || r[5] != "") {
			t.Errorf("broken row has detail columns: %q", r)
		}
	}
	rows, _, err = ListRows(ctx, st, "file", "LATEST", false, nil)
	if err != nil || len(rows) != 2 || rows[1][0] != nameA {
		t.Fatalf("LATEST rows %q %v", rows, err)
	}
	if b, err := Resolve(ctx, st, "LATEST"); err != nil || b.Name != nameA {
		t.Fatalf("Resolve LATEST: %v %v", b.Name, err)
	}
	if b, err := ChooseBackup(ctx, st, "", Target{}); err != nil || b.Name != nameA {
		t.Fatalf("ChooseBackup: %v %v", b.Name, err)
	}
	if b, err := ChooseBackup(ctx, st, "", Target{Time: time.Now().UTC().Format(time.RFC3339)}); err != nil || b.Name != nameA {
		t.Fatalf("ChooseBackup by time: %v %v", b.Name, err)
	}
}
