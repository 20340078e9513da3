package envdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReadFollowsDaemontoolsRules(t *testing.T) {
	d := t.TempDir()
	write(t, d, "WALE_S3_PREFIX", "s3://bucket/path\nsecond line ignored\n")
	write(t, d, "TRAILING", "value \t \n")
	write(t, d, "NUL", "a\x00b\n")
	write(t, d, "EMPTY", "")
	write(t, d, "NOEOL", "x")
	write(t, d, ".hidden", "nope")
	write(t, d, "LEADING", "  keep\n")
	ents, err := Read(d)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"EMPTY": "was set", "OTHER": "kept"}
	Apply(env, ents)
	want := map[string]string{
		"WALE_S3_PREFIX": "s3://bucket/path",
		"TRAILING":       "value",
		"NUL":            "a\nb",
		"NOEOL":          "x",
		"LEADING":        "  keep",
		"OTHER":          "kept",
	}
	if len(env) != len(want) {
		t.Fatalf("env = %q, want %q", env, want)
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
}

func TestReadMissingDirectoryNamesIt(t *testing.T) {
	_, err := Read("/nonexistent/wal-e.d/env")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/wal-e.d/env") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v", err)
	}
}

func TestReadUnreadableFileIsAnError(t *testing.T) {
	if os.Getuid() == 0 {
		// root reads anything; use a directory entry that cannot be opened instead.
		d := t.TempDir()
		if err := os.Symlink("/nonexistent-target", filepath.Join(d, "BROKEN")); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(d); err == nil || !strings.Contains(err.Error(), "BROKEN") {
			t.Fatalf("err = %v, want one naming BROKEN", err)
		}
		return
	}
	d := t.TempDir()
	write(t, d, "SECRET", "x\n")
	os.Chmod(filepath.Join(d, "SECRET"), 0)
	if _, err := Read(d); err == nil || !strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("err = %v", err)
	}
}
