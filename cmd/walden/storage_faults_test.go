package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An unmounted or deleted file store is an error naming it: wal-fetch
// must not report a missing segment, wal-push must not recreate the
// directory on the root file system.
func TestMissingFileStoreRootIsAnErrorNamingIt(t *testing.T) {
	clean(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "mnt", "archive")
	t.Setenv("WALE_FILE_PREFIX", "file://localhost"+root)
	seg := filepath.Join(dir, "000000010000000000000001")
	if err := os.WriteFile(seg, make([]byte, 16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	want := "file store directory " + root + " does not exist"
	for _, args := range [][]string{
		{"wal-push", seg},
		{"wal-fetch", "-p0", "000000010000000000000001", filepath.Join(dir, "RECOVERYXLOG")},
		{"backup-list"},
	} {
		_, errOut, code := walden(t, args...)
		if code == 0 || !strings.Contains(errOut, want) {
			t.Errorf("%s: exit %d, stderr %q does not say %q", args[0], code, errOut, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "mnt")); !os.IsNotExist(err) {
		t.Errorf("the missing store was created: %v", err)
	}
}

func TestFilePrefixOnAnotherHostIsRefused(t *testing.T) {
	clean(t)
	t.Setenv("WALE_FILE_PREFIX", "file://backuphost/srv/archive")
	_, errOut, code := walden(t, "backup-list")
	if code == 0 || !strings.Contains(errOut, `names host "backuphost"`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
