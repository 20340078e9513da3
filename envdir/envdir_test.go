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

// A value longer than one read, a first line cut at 1 MiB as before, a
// link to a file (secrets often are), and a subdirectory, which is skipped.
func TestReadLongValuesLinksAndDirectories(t *testing.T) {
	d := t.TempDir()
	long := strings.Repeat("k", 10000)
	write(t, d, "LONG", long+"\nnext\n")
	write(t, d, "HUGE", strings.Repeat("h", 1<<20+500)+"\n")
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(d, "LINKED")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(d, "SUBDIR"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, d, "SHORT", "v\n")
	ents, err := Read(d)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	Apply(env, ents)
	if env["LONG"] != long || env["LINKED"] != "s3cr3t" || env["SHORT"] != "v" || len(env["HUGE"]) != 1<<20 {
		t.Fatalf("LONG %d bytes, HUGE %d bytes, LINKED %q, SHORT %q", len(env["LONG"]), len(env["HUGE"]), env["LINKED"], env["SHORT"])
	}
	if _, ok := env["SUBDIR"]; ok || len(env) != 4 {
		t.Fatalf("env has %d entries, SUBDIR among them: %t", len(env), ok)
	}
}
