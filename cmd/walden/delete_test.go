package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walden-pg/walden/internal/pgtest"
)

// bbDeleteStore is a file store holding two backups (at segments 2 and 5)
// and WAL around them.
func bbDeleteStore(t *testing.T) (envdir, store string) {
	t.Helper()
	dir := bbScratch(t)
	store = filepath.Join(dir, "store")
	for _, k := range []string{
		"basebackups_005/base_000000010000000000000002_00000040_backup_stop_sentinel.json",
		"basebackups_005/base_000000010000000000000002_00000040/extended_version.txt",
		"basebackups_005/base_000000010000000000000002_00000040/tar_partitions/part_00000000.tar.lz4",
		"basebackups_005/base_000000010000000000000005_00000040_backup_stop_sentinel.json",
		"basebackups_005/base_000000010000000000000005_00000040/extended_version.txt",
		"basebackups_005/base_000000010000000000000005_00000040/tar_partitions/part_00000000.tar.lz4",
		"wal_005/000000010000000000000001.lz4",
		"wal_005/000000010000000000000004.lzo",
		"wal_005/000000010000000000000004.00000028.backup.lz4",
		"wal_005/000000010000000000000005.lz4",
		"wal_005/00000002.history.lz4",
		"wal_002/000000010000000000000001.lzo",
	} {
		p := filepath.Join(store, k)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pgtest.Chown(t, store)
	envdir = filepath.Join(dir, "env")
	bbEnvdir(t, envdir, map[string]string{"WALE_FILE_PREFIX": "file://localhost" + store, "WALE_LOG_DESTINATION": "stderr"})
	return envdir, store
}

func TestDeleteCommandLineFollowsWALEGrammar(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	envdir, store := bbDeleteStore(t)
	before := bbStoreKeys(t, store)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"delete"}, "the following arguments are required: MODE"},
		{[]string{"delete", "retain", "2", "--confirm"}, "unrecognized arguments: --confirm"},
		{[]string{"delete", "retain", "0"}, "argument NUM_TO_RETAIN: must be at least 1"},
		{[]string{"delete", "retain", "x"}, "invalid int value: 'x'"},
		{[]string{"delete", "sideways"}, "argument MODE: invalid choice: 'sideways'"},
		{[]string{"delete", "everything", "now"}, "unrecognized arguments: now"},
	} {
		r := bbWalden(t, bin, envdir, nil, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "usage: walden delete") {
			t.Errorf("%v: exit %d, stderr:\n%s", c.args, r.code, r.stderr)
		}
	}
	if !slices.Equal(before, bbStoreKeys(t, store)) {
		t.Fatal("a usage error deleted something")
	}
}

func TestDeleteBeforeASegmentAndOldVersions(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	envdir, store := bbDeleteStore(t)
	dry := bbMust(t, bbWalden(t, bin, envdir, nil, "delete", "before", "000000010000000000000005"), "dry run")
	for _, want := range []string{`The subcommand is "delete before".`, "MSG: performing dry run of data deletion",
		"MSG: deleting a base backup sentinel file", "HINT: This is only a dry run -- no actual data is being deleted"} {
		if !strings.Contains(dry.stderr, want) {
			t.Errorf("dry run log lacks %q", want)
		}
	}
	bbMust(t, bbWalden(t, bin, envdir, nil, "delete", "--confirm", "before", "000000010000000000000005"), "delete before")
	bbMust(t, bbWalden(t, bin, envdir, nil, "delete", "-n", "--confirm", "old-versions"), "dry old-versions")
	bbMust(t, bbWalden(t, bin, envdir, nil, "delete", "--confirm", "old-versions"), "old-versions")
	want := []string{
		"basebackups_005/base_000000010000000000000005_00000040/extended_version.txt",
		"basebackups_005/base_000000010000000000000005_00000040/tar_partitions/part_00000000.tar.lz4",
		"basebackups_005/base_000000010000000000000005_00000040_backup_stop_sentinel.json",
		"wal_005/000000010000000000000005.lz4",
		"wal_005/00000002.history.lz4",
	}
	if got := bbStoreKeys(t, store); !slices.Equal(got, want) {
		t.Fatalf("left\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDeleteBeforeAnUnknownNameDeletesNothing: a backup name that is not
// in the store, or a segment past the newest backup, is an error (exit 1)
// and the store is untouched.
func TestDeleteBeforeAnUnknownNameDeletesNothing(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	envdir, store := bbDeleteStore(t)
	before := bbStoreKeys(t, store)
	for _, c := range []struct{ arg, want string }{
		{"base_000000010000000000000009_00000040", "MSG: no base backup named base_000000010000000000000009_00000040"},
		{"000000010000000000000009", "would delete every complete base backup"},
	} {
		r := bbWalden(t, bin, envdir, nil, "delete", "--confirm", "before", c.arg)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d:\n%s", c.arg, r.code, r.stderr)
		}
	}
	if !slices.Equal(before, bbStoreKeys(t, store)) {
		t.Fatal("a refused delete before removed keys")
	}
}
