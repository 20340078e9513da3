package basebackup

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestDeleteRemovesTheFileListsOfDeletedBackups: full backups of format 2
// hold walden_files.json<ext> in their directory; delete before takes it
// with the backup and does not call it an unexpected key.
func TestDeleteRemovesTheFileListsOfDeletedBackups(t *testing.T) {
	st, p, dir := testStore(t)
	putKeys(t, st, dir,
		Dir+nameA+"/extended_version.txt", PartitionKey(nameA, 0, ".lz4"), FilesKey(nameA, ".lz4"), SentinelKey(nameA),
		Dir+nameB+"/extended_version.txt", PartitionKey(nameB, 0, ".lz4"), FilesKey(nameB, ".lz4"), SentinelKey(nameB),
	)
	log, buf := testLogger()
	if err := DeleteBefore(context.Background(), DeleteOptions{Store: st, Prefix: p, Log: log}, nameB); err != nil {
		t.Fatal(err)
	}
	got := listKeys(t, st)
	if slices.Contains(got, FilesKey(nameA, ".lz4")) {
		t.Errorf("the file list of deleted backup %s survived", nameA)
	}
	if !slices.Contains(got, FilesKey(nameB, ".lz4")) {
		t.Errorf("the file list of kept backup %s was deleted", nameB)
	}
	if strings.Contains(buf.String(), "skipping non-qualifying key") {
		t.Errorf("a file list was called unexpected:\n%s", buf.String())
	}
}
