package basebackup

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDeleteReclaimsStaleTemporaryFilesAndAbandonedBackups: a file-store
// temporary file and an incomplete backup (newer than every complete one)
// last written long ago are removed by delete before; fresh ones, and
// ones written after a running backup of this data directory started,
// stay.
func TestDeleteReclaimsStaleTemporaryFilesAndAbandonedBackups(t *testing.T) {
	lockSandbox(t)
	o, buf, keys := craftedStore(t)
	dir := "/" + o.Prefix.Path
	abandoned := "base_00000001000000000000000C_00000040"
	putKeys(t, o.Store, dir, Dir+abandoned+"/extended_version.txt", PartitionKey(abandoned, 0, ".lz4"))
	tmpDir := filepath.Join(dir, PartitionDir(nameC))
	oldTemp := filepath.Join(tmpDir, ".part_00000001.tar.zst.tmp123")
	walTemp := filepath.Join(dir, "wal_005", ".000000020000000000000010.lz4.tmp9")
	for _, p := range []string{oldTemp, walTemp} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-7 * time.Hour)
		os.Chtimes(p, old, old)
	}
	pgdata := t.TempDir()
	unlock, err := Lock(pgdata)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	time.Sleep(1100 * time.Millisecond)
	running := "base_00000001000000000000000D_00000040"
	if err := o.Store.Put(context.Background(), Dir+running+"/extended_version.txt", strings.NewReader("v"), 1, putOpts()); err != nil {
		t.Fatal(err)
	}
	freshTemp := filepath.Join(tmpDir, ".part_00000002.tar.zst.tmp456")
	os.WriteFile(freshTemp, []byte("y"), 0o644)

	// Seven hours on, only the lock of the running backup protects what
	// it wrote.
	o.PGData, o.Now = pgdata, time.Now().Add(7*time.Hour)
	if err := DeleteBefore(context.Background(), o, nameA); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{oldTemp, walTemp} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("stale temporary file %s kept", p)
		}
	}
	if _, err := os.Lstat(freshTemp); err != nil {
		t.Errorf("a temporary file written during the running backup was deleted")
	}
	got := keys()
	if slices.Contains(got, PartitionKey(abandoned, 0, ".lz4")) {
		t.Error("abandoned incomplete backup kept")
	}
	if !slices.Contains(got, Dir+running+"/extended_version.txt") {
		t.Error("the running backup's object was deleted")
	}
	if !slices.Contains(got, SentinelKey(nameC)) || !slices.Contains(got, PartitionKey(nameC, 0, ".zst")) {
		t.Error("a complete backup lost objects")
	}
	if !strings.Contains(buf.String(), "reclaiming") {
		t.Errorf("no reclaim line:\n%s", buf.String())
	}
}
