package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBackupLabelStartNamesTheSegmentRecoveryBeginsAt(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ label, want string }{
		{"START WAL LOCATION: 0/A000028 (file 00000001000000000000000A)\nCHECKPOINT LOCATION: 0/A000060\n" +
			"BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-08 02:41:00 UTC\nLABEL: pg_basebackup base backup\nSTART TIMELINE: 1\n",
			"00000001000000000000000A"},
		{"CHECKPOINT LOCATION: 0/A000060\nSTART WAL LOCATION: 3/1F000028 (file 000000020000000300000001F)\n", ""}, // 25 digits
		{"START WAL LOCATION: 0/A000028 (file 00000001000000000000000A\n", ""},                                    // unclosed
		{"START WAL LOCATION: 0/A000028\n", ""},
		{"LABEL: (file 00000001000000000000000A)\n", ""},
		{"", ""},
	} {
		path := filepath.Join(dir, "backup_label")
		if err := os.WriteFile(path, []byte(c.label), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := backupLabelStart(path); got != c.want {
			t.Errorf("%q: got %q, want %q", c.label, got, c.want)
		}
	}
	if got := backupLabelStart(filepath.Join(dir, "none")); got != "" {
		t.Errorf("no backup_label: got %q", got)
	}
}
