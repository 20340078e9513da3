package basebackup

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/storage"
)

// retainFixture stores backups per spec: "F" a full backup, "D" a delta of
// the previous backup; each backup's start segment gets a WAL segment.
func retainFixture(t *testing.T, spec string) (*chainWriter, DeleteOptions, []*simBackup) {
	w, st, prefix := newChainWriter(t, 5)
	r := rand.New(rand.NewSource(5))
	s := baseState(r)
	var bs []*simBackup
	for i, c := range spec {
		var parent *simBackup
		if c == 'D' {
			parent = bs[i-1]
		}
		s = mutate(r, s, 0)
		b := w.push(s, parent)
		bs = append(bs, b)
		seg, _, _ := StartSegment(b.name)
		w.putObj(WALDir+seg+".lz4", []byte("wal"))
	}
	log, _ := testLogger()
	return w, DeleteOptions{Store: st, Prefix: prefix, Log: log}, bs
}

// present reports which of bs still have a sentinel, a file list and a
// partition, and fails on a backup left half-deleted.
func present(t *testing.T, w *chainWriter, st storage.Store, bs []*simBackup) string {
	t.Helper()
	keys := map[string]bool{}
	for _, k := range listKeys(t, st) {
		keys[k] = true
	}
	var out []string
	for _, b := range bs {
		parts := []bool{keys[b.key], keys[FilesKey(b.name, w.format.Ext())], keys[PartitionKey(b.name, 0, w.format.Ext())]}
		switch {
		case parts[0] && parts[1] && parts[2]:
			out = append(out, "1")
		case !parts[0] && !parts[1] && !parts[2]:
			out = append(out, "0")
		default:
			t.Fatalf("%s is half deleted: sentinel, file list, partition present: %v", b.name, parts)
		}
	}
	return strings.Join(out, "")
}

func walPresent(t *testing.T, st storage.Store, bs []*simBackup) string {
	keys := map[string]bool{}
	for _, k := range listKeys(t, st) {
		keys[k] = true
	}
	var out []string
	for _, b := range bs {
		seg, _, _ := StartSegment(b.name)
		out = append(out, map[bool]string{true: "1", false: "0"}[keys[WALDir+seg+".lz4"]])
	}
	return strings.Join(out, "")
}

func TestRetainKeepsTheBackupsAndWALThatKeptDeltasBuildOn(t *testing.T) {
	for _, c := range []struct {
		spec  string
		n     int
		want  string
		wantW string
	}{
		{"FDD", 1, "111", "111"},       // the newest delta needs its whole chain
		{"FDDF", 1, "0001", "0001"},    // a newer full: the old chain goes, deltas included
		{"FDFDD", 2, "00111", "00111"}, // two newest are deltas: their full stays
		{"FDFDD", 4, "11111", "11111"}, // N counts deltas too
		{"FDDFD", 3, "11111", "11111"}, // the 3rd newest is a delta: its chain stays
		{"FDDFD", 2, "00011", "00011"},
	} {
		t.Run(fmt.Sprintf("%s_%d", c.spec, c.n), func(t *testing.T) {
			w, o, bs := retainFixture(t, c.spec)
			res, err := Retain(context.Background(), o, RetainPolicy{Count: c.n})
			if err != nil {
				t.Fatal(err)
			}
			if got := present(t, w, o.Store, bs); got != c.want {
				t.Errorf("backups present %s, want %s (kept %v, deleted %v)", got, c.want, res.Kept, res.Deleted)
			}
			if got := walPresent(t, o.Store, bs); got != c.wantW {
				t.Errorf("WAL present %s, want %s", got, c.wantW)
			}
		})
	}
}

func TestRetainByAgeKeepsTheChainOfTheOldestKeptDelta(t *testing.T) {
	w, o, bs := retainFixture(t, "FDDD")
	// The writer's backups finished an hour apart from 2026-01-01 01:00.
	now := time.Date(2026, 1, 1, 4, 30, 0, 0, time.UTC)
	if _, err := Retain(context.Background(), o, RetainPolicy{Age: 90 * time.Minute, Now: now}); err != nil {
		t.Fatal(err)
	}
	if got := present(t, w, o.Store, bs); got != "1111" {
		t.Fatalf("backups present %s, want all (the kept deltas need the full)", got)
	}
}

func TestDeleteRetainAndDeleteBeforeKeepWhatDeltasNeed(t *testing.T) {
	w, o, bs := retainFixture(t, "FDFDD")
	ctx := context.Background()
	// before the second delta of the second chain: its parent and full stay.
	if err := DeleteBefore(ctx, o, bs[4].name); err != nil {
		t.Fatal(err)
	}
	if got := present(t, w, o.Store, bs); got != "00111" {
		t.Fatalf("after delete before %s: present %s, want 00111", bs[4].name, got)
	}
	if got := walPresent(t, o.Store, bs); got != "00111" {
		t.Fatalf("WAL present %s, want 00111", got)
	}
	w2, o2, bs2 := retainFixture(t, "FDDFD")
	if err := DeleteRetain(ctx, o2, 1); err != nil {
		t.Fatal(err)
	}
	if got := present(t, w2, o2.Store, bs2); got != "00011" {
		t.Fatalf("after delete retain 1: present %s, want 00011", got)
	}
}

func TestDeleteEverythingRemovesDeltas(t *testing.T) {
	_, o, _ := retainFixture(t, "FDD")
	if err := DeleteEverything(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if keys := listKeys(t, o.Store); len(keys) != 0 {
		t.Fatalf("left %v", keys)
	}
}

func TestReclaimRemovesAbandonedDeltaDirectoriesButNeverCompleteOnes(t *testing.T) {
	w, o, bs := retainFixture(t, "FD")
	ctx := context.Background()
	abandoned := DeltaName("base_00000001000000000000000C_00000040", bs[1].name)
	w.putObj(PartitionKey(abandoned, 0, ".lz4"), []byte("x"))
	w.putObj(FilesKey(abandoned, ".lz4"), []byte("x"))
	o.Now = time.Now().Add(7 * time.Hour)
	if err := DeleteBefore(ctx, o, bs[0].name); err != nil {
		t.Fatal(err)
	}
	keys := listKeys(t, o.Store)
	if slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, abandoned) }) {
		t.Errorf("the abandoned delta's objects were kept: %v", keys)
	}
	if got := present(t, w, o.Store, bs); got != "11" {
		t.Errorf("complete backups present %s, want 11", got)
	}
}
