package basebackup

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSentinelOfTheFixtureParsesAndRendersByteForByte(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(fixtureStore(t), "basebackups_005", "base_000000010000000000000040_00000040_backup_stop_sentinel.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSentinel(data)
	if err != nil {
		t.Fatal(err)
	}
	if s.StopSegment != "000000010000000000000040" || s.StopOffset != "00000040" || s.ExpandedSizeBytes != 39241502 {
		t.Fatalf("parsed %+v", s)
	}
	if s.Spec.BasePrefix != "/srv/walefixture/basic/pgdata/" || len(s.Spec.Tablespaces) != 0 || !s.Spec.HasTablespacesKey() {
		t.Fatalf("spec %+v", s.Spec)
	}
	if s.Walden != nil || s.FinishTime != nil {
		t.Fatalf("WAL-E sentinel has walden fields: %+v", s)
	}
	out, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(data) {
		t.Fatalf("re-rendered:\n%s\nwant:\n%s", out, data)
	}
}

func TestSentinelSpecWithTablespacesMatchesWALE(t *testing.T) {
	want := `{"wal_segment_backup_stop": "000000010000000000000001", "wal_segment_offset_backup_stop": "05780024", "expanded_size_bytes": 23400236, "spec": {"base_prefix": "/tmp/pgt/data/", "tablespaces": ["16384"], "16384": {"loc": "/tmp/pgt/ts1/", "link": "pg_tblspc/16384"}}}`
	s, err := ParseSentinel([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := s.Marshal()
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	if s.Spec.Locations["16384"].Loc != "/tmp/pgt/ts1/" {
		t.Fatalf("loc: %+v", s.Spec.Locations)
	}
}

func TestSentinelKeyOrderAndUnknownKeysDoNotMatter(t *testing.T) {
	s, err := ParseSentinel([]byte(`{"spec": {"16385": {"link": "pg_tblspc/16385", "loc": "/x/"}, "tablespaces": ["16385"], "base_prefix": "/d/", "extra": 1}, "expanded_size_bytes": 7, "future": [1,2], "wal_segment_offset_backup_stop": "00000001", "wal_segment_backup_stop": "000000010000000000000002"}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.ExpandedSizeBytes != 7 || s.Spec.Locations["16385"].Loc != "/x/" || s.StopSegment != "000000010000000000000002" {
		t.Fatalf("parsed %+v %+v", s, s.Spec)
	}
}

func TestWaldenSentinelCarriesWALGKeysAndManifest(t *testing.T) {
	start, finish, sysid := uint64(0x3000028), uint64(0x3000100), uint64(7711610613508410003)
	st, ft := time.Date(2026, 11, 24, 5, 0, 0, 0, time.UTC), time.Date(2026, 11, 24, 5, 1, 0, 0, time.UTC)
	s := &Sentinel{
		StopSegment: "000000010000000000000003", StopOffset: "00000256", ExpandedSizeBytes: 100,
		Spec: &Spec{BasePrefix: "/d/", Tablespaces: []string{}},
		Extra: Extra{LSN: &start, FinishLSN: &finish, PgVersion: 150018, SystemIdentifier: &sysid,
			UncompressedSize: 100, CompressedSize: 50, StartTime: &st, FinishTime: &ft, Hostname: "h", DataDir: "/d",
			Walden: &Manifest{FormatVersion: 1, Compression: "lz4", EncryptionKey: "ABCD",
				Partitions: []PartitionInfo{{Name: "part_00000000.tar.lz4", StoredSize: 50, SHA256: "00ff", ExpandedSize: 100, Members: 3}}}},
	}
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	for _, k := range []string{"wal_segment_backup_stop", "wal_segment_offset_backup_stop", "expanded_size_bytes", "spec",
		"LSN", "FinishLSN", "PgVersion", "SystemIdentifier", "UncompressedSize", "CompressedSize", "StartTime", "FinishTime", "Hostname", "DataDir", "walden"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %s missing from %s", k, data)
		}
	}
	back, err := ParseSentinel(data)
	if err != nil {
		t.Fatal(err)
	}
	if *back.SystemIdentifier != sysid || back.Walden.Partitions[0].SHA256 != "00ff" || !back.FinishTime.Equal(ft) || back.Walden.EncryptionKey != "ABCD" {
		t.Fatalf("round trip lost data: %+v", back)
	}
	if got, _ := back.Finished(); !got.Equal(ft) {
		t.Fatalf("Finished = %v", got)
	}
}
