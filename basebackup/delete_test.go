package basebackup

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/walelog"
)

// craftedStore holds three complete backups (A at segment 2, B at 5, C at
// 9), an incomplete one at 3, WAL on two timelines, history, partial and
// backup history files, and some junk.
func craftedStore(t *testing.T) (DeleteOptions, *syncBuffer, func() []string) {
	t.Helper()
	st, p, dir := testStore(t)
	incomplete := "base_000000010000000000000003_00000040"
	putKeys(t, st, dir,
		Dir+nameA+"/extended_version.txt", PartitionKey(nameA, 0, ".lzo"), SentinelKey(nameA),
		Dir+incomplete+"/extended_version.txt", PartitionKey(incomplete, 0, ".lz4"),
		Dir+nameB+"/extended_version.txt", PartitionKey(nameB, 0, ".lz4"), PartitionKey(nameB, 1, ".lz4"), SentinelKey(nameB),
		Dir+nameC+"/extended_version.txt", PartitionKey(nameC, 0, ".zst"), SentinelKey(nameC),
		Dir+"stray.txt",
		"wal_005/000000010000000000000001.lzo",
		"wal_005/000000010000000000000002.lzo",
		"wal_005/000000010000000000000002.00000028.backup.lzo",
		"wal_005/000000010000000000000004.lz4",
		"wal_005/000000010000000000000004.partial.lz4",
		"wal_005/00000002.history.lz4",
		"wal_005/000000020000000000000004.zst",
		"wal_005/000000020000000000000005.lz4",
		"wal_005/000000020000000000000009",
		"wal_005/000000020000000000000010.lz4",
		"wal_005/notes.txt",
		"basebackups_003/old", "wal_001/000000010000000000000001.lzo", "other/keep",
	)
	log, buf := testLogger()
	return DeleteOptions{Store: st, Prefix: p, Log: log}, buf, func() []string { return listKeys(t, st) }
}

func TestDeleteBeforeKeepsTheHorizonSegmentAndHistory(t *testing.T) {
	o, buf, keys := craftedStore(t)
	if err := DeleteBefore(context.Background(), o, nameB); err != nil {
		t.Fatal(err)
	}
	got := keys()
	for _, gone := range []string{SentinelKey(nameA), PartitionKey(nameA, 0, ".lzo"), Dir + "base_000000010000000000000003_00000040/extended_version.txt",
		"wal_005/000000010000000000000001.lzo", "wal_005/000000010000000000000002.00000028.backup.lzo",
		"wal_005/000000010000000000000004.partial.lz4", "wal_005/000000020000000000000004.zst"} {
		if slices.Contains(got, gone) {
			t.Errorf("%s kept", gone)
		}
	}
	for _, kept := range []string{SentinelKey(nameB), PartitionKey(nameB, 1, ".lz4"), SentinelKey(nameC), "wal_005/00000002.history.lz4",
		"wal_005/000000020000000000000005.lz4", "wal_005/notes.txt", Dir + "stray.txt", "other/keep", "basebackups_003/old"} {
		if !slices.Contains(got, kept) {
			t.Errorf("%s deleted", kept)
		}
	}
	log := buf.String()
	for _, want := range []string{"MSG: deleting a base backup sentinel file", "MSG: deleting a extended version metadata file",
		"MSG: deleting a base backup volume", "MSG: deleting a wal file", "MSG: deleting a backup history file",
		"skipping non-qualifying key in 'delete before'", `appears not to match the WAL file naming pattern.`,
		`appears not to match the base-backup sentinel pattern.`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(log, "dry run") {
		t.Error("real run logged as dry run")
	}
}

func TestDeleteBeforeAcceptsABareSegment(t *testing.T) {
	o, _, keys := craftedStore(t)
	if err := DeleteBefore(context.Background(), o, "000000010000000000000005"); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(keys(), SentinelKey(nameA)) || !slices.Contains(keys(), SentinelKey(nameB)) {
		t.Fatal("bare segment horizon not applied like the backup name")
	}
	if _, err := Horizon("yesterday"); err == nil {
		t.Fatal("garbage horizon accepted")
	}
}

func TestDryRunDeletesNothingAndSaysSo(t *testing.T) {
	o, buf, keys := craftedStore(t)
	before := keys()
	o.DryRun = true
	if err := DeleteEverything(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, keys()) {
		t.Fatal("dry run deleted")
	}
	if !strings.Contains(buf.String(), "HINT: This is only a dry run -- no actual data is being deleted") {
		t.Fatal("no dry-run hint")
	}
}

func TestDeleteRetainKeepsNewestByPositionAndTheirWAL(t *testing.T) {
	o, buf, keys := craftedStore(t)
	if err := DeleteRetain(context.Background(), o, 2); err != nil {
		t.Fatal(err)
	}
	got := keys()
	if slices.Contains(got, SentinelKey(nameA)) || !slices.Contains(got, SentinelKey(nameB)) || !slices.Contains(got, SentinelKey(nameC)) {
		t.Fatalf("kept %v", got)
	}
	if slices.Contains(got, "wal_005/000000010000000000000004.lz4") || !slices.Contains(got, "wal_005/000000020000000000000005.lz4") {
		t.Fatalf("WAL horizon wrong: %v", got)
	}
	log := buf.String()
	if !strings.Contains(log, "MSG: Deleting 1 oldest base backups.\n        DETAIL: Found 3 total base backups.\n        HINT: Deleting keys older than "+o.Prefix.URL(SentinelKey(nameB))+".") {
		t.Fatalf("summary line missing:\n%s", log)
	}
}

func TestDeleteRetainSummaryLines(t *testing.T) {
	o, buf, _ := craftedStore(t)
	o.DryRun = true
	DeleteRetain(context.Background(), o, 5)
	if !strings.Contains(buf.String(), "MSG: Retaining all 3 base backups.") {
		t.Fatalf("log:\n%s", buf.String())
	}
	st, p, _ := testStore(t)
	log, buf2 := testLogger()
	DeleteRetain(context.Background(), DeleteOptions{Store: st, Prefix: p, Log: log}, 1)
	if !strings.Contains(buf2.String(), "MSG: Not deleting any data.\n        DETAIL: No existing base backups.") {
		t.Fatalf("empty store log:\n%s", buf2.String())
	}
	if err := DeleteRetain(context.Background(), o, 0); err == nil {
		t.Fatal("retain 0 accepted")
	}
}

func TestDeleteEverythingAndOldVersionsStayInTheirDirectories(t *testing.T) {
	o, buf, keys := craftedStore(t)
	if err := DeleteOldVersions(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	got := keys()
	if slices.Contains(got, "basebackups_003/old") || slices.Contains(got, "wal_001/000000010000000000000001.lzo") || !slices.Contains(got, SentinelKey(nameA)) {
		t.Fatalf("old-versions: %v", got)
	}
	if err := DeleteEverything(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if got := keys(); !slices.Equal(got, []string{"other/keep"}) {
		t.Fatalf("everything left %v", got)
	}
	if !strings.Contains(buf.String(), "MSG: deleting part of a base backup") || !strings.Contains(buf.String(), "MSG: deleting part of wal logs") {
		t.Fatal("kinds not logged")
	}
}

func TestRetentionByCountNeverDeletesTheNewest(t *testing.T) {
	o, _, keys := craftedStore(t)
	res, err := Retain(context.Background(), o, RetainPolicy{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Kept, []string{nameC}) || res.Horizon != nameC || !slices.Equal(res.Deleted, []string{nameA, nameB}) {
		t.Fatalf("result %+v", res)
	}
	got := keys()
	if !slices.Contains(got, SentinelKey(nameC)) || !slices.Contains(got, "wal_005/000000020000000000000009") || slices.Contains(got, "wal_005/000000020000000000000005.lz4") {
		t.Fatalf("left %v", got)
	}
	if !slices.Contains(got, "wal_005/00000002.history.lz4") {
		t.Fatal("history file deleted")
	}
}

func TestRetentionByAgeKeepsTheWindowPlusOneOlderBackup(t *testing.T) {
	o, _, _ := craftedStore(t)
	// Sentinels were written at 00:00:02 (A), 00:00:08 (B), 00:00:11 (C).
	now := time.Date(2026, 1, 1, 0, 0, 14, 0, time.UTC)
	o.DryRun = true
	res, err := Retain(context.Background(), o, RetainPolicy{Age: 3 * time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// Window starts 00:00:11: C is inside, B is the newest before it.
	if !slices.Equal(res.Kept, []string{nameC, nameB}) || !slices.Equal(res.Deleted, []string{nameA}) {
		t.Fatalf("result %+v", res)
	}
	// Everything older than the window: still keep the newest backup.
	res, _ = Retain(context.Background(), o, RetainPolicy{Age: time.Second, Now: now.Add(24 * time.Hour)})
	if !slices.Equal(res.Kept, []string{nameC}) {
		t.Fatalf("old archive: kept %v", res.Kept)
	}
}

func TestRetentionKeepsAllWALWhenAKeptBackupIsAWALEOfflineName(t *testing.T) {
	st, p, dir := testStore(t)
	var buf bytes.Buffer
	o := DeleteOptions{Store: st, Prefix: p, Log: walelog.New(walelog.Options{Stderr: &buf, Destinations: []string{"stderr"}})}
	// WAL-E named this offline backup …40_00000040 although its WAL starts at …04.
	offline := "base_000000010000000000000040_00000040"
	older := "base_000000010000000000000002_00000040"
	putKeys(t, st, dir,
		"wal_005/000000010000000000000001.lzo", "wal_005/000000010000000000000004.lzo",
		SentinelKey(older), SentinelKey(offline))
	res, err := Retain(context.Background(), o, RetainPolicy{Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Deleted, []string{older}) {
		t.Fatalf("deleted %v", res.Deleted)
	}
	got := listKeys(t, st)
	if !slices.Contains(got, "wal_005/000000010000000000000004.lzo") || !slices.Contains(got, "wal_005/000000010000000000000001.lzo") {
		t.Fatalf("WAL the offline backup may need was deleted: %v", got)
	}
	if !strings.Contains(buf.String(), "keeping all WAL") {
		t.Fatalf("no warning: %s", buf.String())
	}
}

// TestDeleteBeforeRefusesWhatWouldWipeTheStore: an unknown or incomplete
// backup name, a horizon past the newest complete backup and a segment
// name with a suffix are all errors that delete nothing.
func TestDeleteBeforeRefusesWhatWouldWipeTheStore(t *testing.T) {
	for _, c := range []struct{ arg, want string }{
		{"base_0000000100000000000000FF_00000040", "no base backup named"},
		{"base_000000010000000000000003_00000040", "no base backup named"}, // incomplete
		{"0000000100000000000000FF", "would delete every complete base backup"},
		{"00000001000000000000000A", "would delete every complete base backup"},
		{"000000010000000000000005.lz4", "invalid delete before argument"},
		{nameB + "_backup_stop_sentinel.json", "invalid delete before argument"},
	} {
		o, _, keys := craftedStore(t)
		before := keys()
		err := DeleteBefore(context.Background(), o, c.arg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.arg, err, c.want)
		}
		if !slices.Equal(before, keys()) {
			t.Errorf("%s: refused delete removed keys", c.arg)
		}
	}
}

// TestDeleteBeforeTheNewestBackupKeepsItAndItsWAL: naming the newest
// complete backup is allowed and keeps it and the WAL from its start.
func TestDeleteBeforeTheNewestBackupKeepsItAndItsWAL(t *testing.T) {
	o, _, keys := craftedStore(t)
	if err := DeleteBefore(context.Background(), o, nameC); err != nil {
		t.Fatal(err)
	}
	got := keys()
	for _, kept := range []string{SentinelKey(nameC), PartitionKey(nameC, 0, ".zst"), "wal_005/000000020000000000000009", "wal_005/000000020000000000000010.lz4"} {
		if !slices.Contains(got, kept) {
			t.Errorf("%s deleted", kept)
		}
	}
	if slices.Contains(got, SentinelKey(nameB)) {
		t.Error("older backup kept")
	}
}
