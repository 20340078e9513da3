package check

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/gpg"
	"github.com/walden-pg/walden/storage"
)

const url = "s3://bucket/prod/db1"

func TestStoreProbeWritesReadsDeletesAndLeavesNothing(t *testing.T) {
	st := newMemStore()
	r := probeStore(context.Background(), st, url, "")
	if !r.OK || r.Detail != "wrote, read and deleted a probe at "+url {
		t.Fatalf("got %+v", r)
	}
	if len(st.objs) != 0 {
		t.Fatalf("left objects behind: %v", st.objs)
	}
	if len(st.deleted) != 1 || !strings.HasPrefix(st.deleted[0], "walden_check/probe-") {
		t.Fatalf("deleted %v, want one walden_check/probe-* key", st.deleted)
	}
}

func TestProbeKeysAreUniqueAndOutsideTheArchiveDirectories(t *testing.T) {
	a, b := probeKey(), probeKey()
	if a == b {
		t.Fatalf("two probes share the key %s", a)
	}
	for _, k := range []string{a, b} {
		if !strings.HasPrefix(k, "walden_check/probe-") || strings.Count(k, "/") != 1 {
			t.Errorf("probe key %q", k)
		}
	}
}

func TestStoreProbeNamesTheStepThatFailed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*memStore)
		want  string
	}{
		{"write", func(m *memStore) { m.putErr = errBoom }, "cannot write to " + url + ": boom"},
		{"read", func(m *memStore) { m.getErr = errBoom }, "cannot read back the probe walden_check/p from " + url + ": boom"},
		{"compare", func(m *memStore) { m.corrupt = true }, "the probe walden_check/p read back from " + url + " differs from what was written"},
		{"delete", func(m *memStore) { m.delErr = errBoom }, "cannot delete the probe walden_check/p from " + url + ": boom"},
		{"still there", func(m *memStore) { m.sticky = true }, "the probe walden_check/p is still in " + url + " after it was deleted"},
		{"head", func(m *memStore) { m.headErr = errBoom }, "cannot confirm the probe walden_check/p was deleted from " + url + ": boom"},
	} {
		st := newMemStore()
		tc.setup(st)
		r := probeStore(context.Background(), st, url, "walden_check/p")
		if r.OK || r.Name != "store" || !strings.HasPrefix(r.Detail, tc.want) {
			t.Errorf("%s: got %+v, want detail starting %q", tc.name, r, tc.want)
		}
	}
}

func TestFailedReadStillCleansUpTheProbe(t *testing.T) {
	st := newMemStore()
	st.corrupt = true
	probeStore(context.Background(), st, url, "walden_check/p")
	if len(st.objs) != 0 {
		t.Fatalf("probe left behind: %v", st.objs)
	}
}

func TestSentinelBackupsTakesOnlySentinelsBesideBackupDirectories(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	objs := []storage.Object{
		{Key: "basebackups_005/base_000000010000000000000040_00000040/extended_version.txt"},
		{Key: "basebackups_005/base_000000010000000000000040_00000040/tar_partitions/part_00000000.tar.lzo"},
		{Key: "basebackups_005/base_000000010000000000000040_00000040_backup_stop_sentinel.json", Modified: t0},
		{Key: "basebackups_005/base_000000010000000000000050_00000040/x_backup_stop_sentinel.json"}, // inside a backup
		{Key: "basebackups_005/_backup_stop_sentinel.json"},                                         // no name
		{Key: "basebackups_005/base_000000010000000000000009_00000028_backup_stop_sentinel.json", Modified: t0.Add(time.Hour)},
		{Key: "basebackups_005/base_000000010000000000000060_00000040/"}, // started, no sentinel yet
	}
	got := SentinelBackups(objs)
	want := []Backup{
		{Name: "base_000000010000000000000009_00000028", Modified: t0.Add(time.Hour)},
		{Name: "base_000000010000000000000040_00000040", Modified: t0},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestWaldenSentinelsAreRecognisedByTheirWaldenObject(t *testing.T) {
	for _, tc := range []struct {
		json   string
		walden bool
	}{
		{`{"wal_segment_backup_stop": "000000010000000000000040", "wal_segment_offset_backup_stop": "00000040", "expanded_size_bytes": 39241502, "spec": {"base_prefix": "/srv", "tablespaces": []}}`, false},
		{`{"walden": {"format": 1}, "wal_segment_backup_stop": "000000010000000000000040", "LSN": 1}`, true},
		{`{"spec": {"walden": 1}}`, false}, // only a top-level key counts
	} {
		got, err := IsWaldenSentinel([]byte(tc.json))
		if err != nil || got != tc.walden {
			t.Errorf("%s: got %v, %v; want %v", tc.json, got, err, tc.walden)
		}
	}
	if _, err := IsWaldenSentinel([]byte("{not json")); err == nil {
		t.Error("a broken sentinel was accepted")
	}
}

func TestSummarizeWALGivesFirstLastAndCountPerTimeline(t *testing.T) {
	var objs []storage.Object
	for _, k := range []string{
		"000000010000000000000001.lzo", "000000010000000000000002.lzo", "0000000100000001000000FF.lz4",
		"000000010000000000000003", // codec none
		"00000002.history.lz4", "00000003.history",
		"000000020000000100000000.zst", "000000020000000100000003.zst",
		"000000010000000000000002.00000028.backup.lzo", // backup history file
		"000000010000000000000004.partial.lz4",         // partial segment
		"000000010000000000000005.tmp",                 // not a codec
		"sub/000000010000000000000009.lz4",             // not directly in wal_005/
	} {
		objs = append(objs, storage.Object{Key: "wal_005/" + k})
	}
	got := SummarizeWAL(objs)
	want := &WALSummary{Segments: 6, HistoryFiles: 2, Timelines: []Timeline{
		{Timeline: "00000001", First: "000000010000000000000001", Last: "0000000100000001000000FF", Segments: 4},
		{Timeline: "00000002", First: "000000020000000100000000", Last: "000000020000000100000003", Segments: 2},
	}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if d := got.describe(); d != "6 segments on 2 timelines (2 history files), newest 000000020000000100000003" {
		t.Errorf("describe: %q", d)
	}
	if d := SummarizeWAL(nil).describe(); d != "no segments found, 0 history files" {
		t.Errorf("empty describe: %q", d)
	}
}

func settings() *config.Settings {
	p, err := storage.ParsePrefix(url)
	if err != nil {
		panic(err)
	}
	return &config.Settings{Prefix: p, PrefixVar: "WALE_S3_PREFIX", HasPrefix: true, Compression: "lz4"}
}

func input(st storage.Store, s *config.Settings) Input {
	return Input{
		Settings:  s,
		OpenStore: func(context.Context) (storage.Store, error) { return st, nil },
		Format: func() (blob.Format, error) {
			cr, err := gpg.New(s.GPG)
			if err != nil {
				return blob.Format{}, err
			}
			f := blob.Format{Codec: codec.LZ4{}}
			if cr != nil {
				f.Crypt = cr
			}
			return f, nil
		},
		Postgres: func(context.Context) (*PGFacts, error) { return goodFacts(), nil },
	}
}

func TestRunPassesAndListsBackupsAndWAL(t *testing.T) {
	st := newMemStore()
	t0 := time.Date(2026, 11, 24, 5, 0, 0, 0, time.UTC)
	st.add("basebackups_005/base_000000010000000000000040_00000040_backup_stop_sentinel.json", `{"wal_segment_backup_stop": "000000010000000000000040"}`, t0)
	st.add("basebackups_005/base_000000010000000000000050_00000040_backup_stop_sentinel.json", `{"walden": {}}`, t0.Add(time.Hour))
	st.add("wal_005/000000010000000000000041.lz4", "x", t0)
	rep := Run(context.Background(), input(st, settings()))
	if !rep.OK {
		var b bytes.Buffer
		rep.WriteText(&b)
		t.Fatalf("report not ok:\n%s", b.String())
	}
	want := []Backup{
		{Name: "base_000000010000000000000040_00000040", Walden: false, Modified: t0},
		{Name: "base_000000010000000000000050_00000040", Walden: true, Modified: t0.Add(time.Hour)},
	}
	if fmt.Sprint(rep.Backups) != fmt.Sprint(want) {
		t.Errorf("backups %v, want %v", rep.Backups, want)
	}
	if r := resultsByName(rep.Checks)["backups"]; r.Detail != "2 found (1 by walden, 1 by WAL-E), newest base_000000010000000000000050_00000040" {
		t.Errorf("backups check: %+v", r)
	}
	if rep.WAL == nil || rep.WAL.Segments != 1 {
		t.Errorf("wal %+v", rep.WAL)
	}
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "config,store,gpg,postgres,archive_mode,archive_command,wal_level,archiver,backups,wal" {
		t.Errorf("checks in order %s", got)
	}
}

func TestUnusableStoreFailsOnceAndSkipsTheListing(t *testing.T) {
	st := newMemStore()
	st.putErr = errBoom
	rep := Run(context.Background(), input(st, settings()))
	if rep.OK {
		t.Fatal("report ok with an unwritable store")
	}
	probs := rep.Problems()
	if len(probs) != 1 || probs[0].Name != "store" {
		t.Fatalf("problems %+v, want only the store", probs)
	}
	if rep.Backups != nil || rep.WAL != nil {
		t.Errorf("listing present: %v %v", rep.Backups, rep.WAL)
	}
	got := resultsByName(rep.Checks)
	if !got["backups"].Skipped || !got["wal"].Skipped {
		t.Errorf("listing not skipped: %+v", got)
	}
}

func TestStoreThatCannotBeOpenedIsAProblem(t *testing.T) {
	in := input(nil, settings())
	in.OpenStore = func(context.Context) (storage.Store, error) { return nil, errBoom }
	rep := Run(context.Background(), in)
	if r := resultsByName(rep.Checks)["store"]; r.OK || r.Detail != "cannot open "+url+": boom" {
		t.Fatalf("store: %+v", r)
	}
}

func TestMissingPrefixIsAConfigProblem(t *testing.T) {
	s := &config.Settings{Compression: "lz4"}
	rep := Run(context.Background(), input(newMemStore(), s))
	got := resultsByName(rep.Checks)
	if got["config"].OK || !strings.Contains(got["config"].Detail, "no storage prefix") {
		t.Errorf("config: %+v", got["config"])
	}
	if !got["store"].Skipped {
		t.Errorf("store: %+v", got["store"])
	}
}

func TestUnreadableSentinelIsABackupsProblem(t *testing.T) {
	st := newMemStore()
	st.add("basebackups_005/base_000000010000000000000040_00000040_backup_stop_sentinel.json", "{trunc", time.Now())
	rep := Run(context.Background(), input(st, settings()))
	r := resultsByName(rep.Checks)["backups"]
	if r.OK || !strings.HasPrefix(r.Detail, "the sentinel of base_000000010000000000000040_00000040 is unreadable: ") {
		t.Fatalf("backups: %+v", r)
	}
}

func TestListingFailureNamesTheDirectory(t *testing.T) {
	st := newMemStore()
	st.listErr = errBoom
	rep := Run(context.Background(), input(st, settings()))
	got := resultsByName(rep.Checks)
	if r := got["backups"]; r.OK || r.Detail != "cannot list basebackups_005/ in "+url+": boom" {
		t.Errorf("backups: %+v", r)
	}
	if r := got["wal"]; r.OK || r.Detail != "cannot list wal_005/ in "+url+": boom" {
		t.Errorf("wal: %+v", r)
	}
}

func TestSecretsNeverReachTheReport(t *testing.T) {
	in := input(nil, settings())
	in.OpenStore = func(context.Context) (storage.Store, error) {
		return nil, fmt.Errorf("signature for secret s3cr3tS3CR3T mismatched")
	}
	in.Secrets = []string{"s3cr3tS3CR3T", ""}
	rep := Run(context.Background(), in)
	var text, js, probs bytes.Buffer
	rep.WriteText(&text)
	rep.WriteJSON(&js)
	rep.WriteProblems(&probs, "walden check: ")
	for _, out := range []string{text.String(), js.String(), probs.String()} {
		if strings.Contains(out, "s3cr3t") {
			t.Fatalf("secret printed:\n%s", out)
		}
	}
	if !strings.Contains(probs.String(), "walden check: store: cannot open "+url+": signature for secret *** mismatched\n") {
		t.Fatalf("problems:\n%s", probs.String())
	}
}

func TestPostgresUnreachableIsAProblemAndNoPostgresSkipsIt(t *testing.T) {
	in := input(newMemStore(), settings())
	in.Postgres = func(context.Context) (*PGFacts, error) {
		return nil, fmt.Errorf("failed to connect to `user=postgres`: refused")
	}
	got := resultsByName(Run(context.Background(), in).Checks)
	if r := got["postgres"]; r.OK || !strings.HasPrefix(r.Detail, "failed to connect to `user=postgres`: refused") {
		t.Errorf("postgres: %+v", r)
	}
	if _, ok := got["archive_mode"]; ok {
		t.Error("settings judged without a connection")
	}

	in.Postgres = nil
	rep := Run(context.Background(), in)
	if r := resultsByName(rep.Checks)["postgres"]; !rep.OK || !r.Skipped {
		t.Errorf("--no-postgres: ok=%v %+v", rep.OK, r)
	}
}

func TestAPartThatHangsFailsAtTheTimeout(t *testing.T) {
	in := input(newMemStore(), settings())
	in.Timeout = 50 * time.Millisecond
	block := make(chan struct{})
	defer close(block)
	in.Postgres = func(context.Context) (*PGFacts, error) { <-block; return nil, nil }
	rep := Run(context.Background(), in)
	if r := resultsByName(rep.Checks)["postgres"]; r.OK || !strings.Contains(r.Detail, "did not finish within 50ms") {
		t.Fatalf("postgres: %+v", r)
	}
}

func TestGPGProbeRoundTripsWithTheSecretKeyFile(t *testing.T) {
	k := newTestKey(t)
	s := settings()
	s.GPG = config.GPG{KeyID: k.fpr, Enabled: true, SecretKeyPath: k.sec}
	r := checkGPG(s.GPG, input(nil, s).Format)
	if !r.OK || r.Detail != "encrypted and decrypted a probe with key "+k.fpr+" (fingerprint "+k.fpr+")" {
		t.Fatalf("got %+v", r)
	}
}

func TestGPGWithOnlyThePublicKeyEncryptsAndSaysDecryptionWasNotTried(t *testing.T) {
	k := newTestKey(t)
	s := settings()
	s.GPG = config.GPG{KeyID: k.fpr, Enabled: true, PublicKeyPath: k.pub}
	t.Setenv("GNUPGHOME", t.TempDir()) // no secret key in any keyring
	r := checkGPG(s.GPG, input(nil, s).Format)
	if !r.OK || !strings.HasSuffix(r.Detail, "no secret key here, so decryption was not tried") {
		t.Fatalf("got %+v", r)
	}
}

func TestGPGKeyThatCannotBeUsedIsAProblem(t *testing.T) {
	s := settings()
	s.GPG = config.GPG{KeyID: "0x1234567890ABCDEF", Enabled: true}
	t.Setenv("GNUPGHOME", t.TempDir())
	r := checkGPG(s.GPG, input(nil, s).Format)
	if r.OK || r.Name != "gpg" || !strings.Contains(r.Detail, "0x1234567890ABCDEF cannot be used for encryption") {
		t.Fatalf("got %+v", r)
	}
}

func TestGPGNotConfiguredIsSkipped(t *testing.T) {
	r := checkGPG(config.GPG{}, nil)
	if !r.OK || !r.Skipped {
		t.Fatalf("got %+v", r)
	}
}

func TestTextReportMarksEachCheckAndIndentsListings(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 5, 0, 0, 0, time.UTC)
	rep := &Report{
		Checks: []Result{
			pass("store", "wrote, read and deleted a probe at %s", url),
			fail("archive_mode", "is off (want on)"),
			skip("gpg", "not configured"),
			pass("backups", "1 found"),
			pass("wal", "1 segment"),
		},
		Backups: []Backup{{Name: "base_000000010000000000000040_00000040", Walden: true, Modified: t0}},
		WAL:     &WALSummary{Segments: 1, Timelines: []Timeline{{Timeline: "00000001", First: "000000010000000000000041", Last: "000000010000000000000041", Segments: 1}}},
	}
	var b bytes.Buffer
	rep.WriteText(&b)
	want := "ok   store: wrote, read and deleted a probe at " + url + "\n" +
		"FAIL archive_mode: is off (want on)\n" +
		"skip gpg: not configured\n" +
		"ok   backups: 1 found\n" +
		"     base_000000010000000000000040_00000040  walden  2026-11-24T05:00:00Z\n" +
		"ok   wal: 1 segment\n" +
		"     timeline 00000001: 000000010000000000000041 .. 000000010000000000000041 (1 segment)\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	var p bytes.Buffer
	rep.WriteProblems(&p, "walden check: ")
	if p.String() != "walden check: archive_mode: is off (want on)\n" {
		t.Fatalf("problems %q", p.String())
	}
}

func TestJSONReportIsOneObjectWithChecksBackupsAndWAL(t *testing.T) {
	st := newMemStore()
	st.add("basebackups_005/base_000000010000000000000040_00000040_backup_stop_sentinel.json", `{"walden": {}}`, time.Now())
	rep := Run(context.Background(), input(st, settings()))
	var b bytes.Buffer
	rep.WriteJSON(&b)
	if strings.Count(b.String(), "\n") != 1 {
		t.Fatalf("not one line: %q", b.String())
	}
	var got struct {
		OK     *bool `json:"ok"`
		Checks []struct {
			Name   string `json:"name"`
			OK     *bool  `json:"ok"`
			Detail string `json:"detail"`
		} `json:"checks"`
		Backups []struct {
			Name   string `json:"name"`
			Walden bool   `json:"walden"`
		} `json:"backups"`
		WAL *struct {
			Timelines []json.RawMessage `json:"timelines"`
		} `json:"wal"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.OK == nil || !*got.OK || len(got.Checks) == 0 || got.Checks[0].OK == nil || got.WAL == nil || got.WAL.Timelines == nil {
		t.Fatalf("shape: %s", b.String())
	}
	if len(got.Backups) != 1 || !got.Backups[0].Walden {
		t.Fatalf("backups: %s", b.String())
	}
}
