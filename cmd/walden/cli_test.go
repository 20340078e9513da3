package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// walden runs the command in-process and returns stdout, stderr and the status.
func walden(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"walden"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

func waleRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"/opt/wal-e/bin/wal-e"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

// clean removes every storage and walden variable for the test's duration.
func clean(t *testing.T) {
	for _, kv := range os.Environ() {
		k := strings.SplitN(kv, "=", 2)[0]
		if strings.HasPrefix(k, "WALE_") || strings.HasPrefix(k, "WALDEN_") || strings.HasPrefix(k, "AWS_") || k == "GOOGLE_APPLICATION_CREDENTIALS" {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("WALE_LOG_DESTINATION", "stderr")
}

func filePrefix(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("WALE_FILE_PREFIX", "file://localhost"+dir)
	return dir
}

func TestVersionAsWaldenAndAsWALE(t *testing.T) {
	clean(t)
	if out, _, code := walden(t, "version"); code != 0 || out != "walden dev\n" {
		t.Fatalf("%q %d", out, code)
	}
	if out, _, code := waleRun(t, "version"); code != 0 || out != "1.1.1+walden.dev\n" {
		t.Fatalf("%q %d", out, code)
	}
}

func TestHelpGoesToStdoutWithStatusZero(t *testing.T) {
	clean(t)
	out, errOut, code := walden(t, "--help")
	if code != 0 || !strings.HasPrefix(out, "usage: walden") || errOut != "" {
		t.Fatalf("%d %q %q", code, out, errOut)
	}
	out, _, code = walden(t, "wal-fetch", "-h")
	if code != 0 || !strings.Contains(out, "--prefetch") {
		t.Fatalf("%d %q", code, out)
	}
}

func TestUsageErrorsExitTwoOnStderr(t *testing.T) {
	clean(t)
	filePrefix(t)
	cases := [][]string{
		{"wal-push", "--terse", "x"},          // global option after the subcommand
		{"wal-fetch", "only-one"},             // missing positional
		{"wal-fetch", "a", "b", "-p", "many"}, // bad int
		{"nonsense"},                          // unknown subcommand
		{"-k", "id", "--aws-instance-profile", "version"},
		{"--no-such-flag", "version"},
	}
	for _, c := range cases {
		out, errOut, code := walden(t, c...)
		if code != 2 || out != "" || !strings.Contains(errOut, "usage: ") || !strings.Contains(errOut, "error: ") {
			t.Errorf("%v: code %d out %q err %q", c, code, out, errOut)
		}
	}
}

func TestSubcommandOptionsAfterPositionalsAndAttachedForms(t *testing.T) {
	clean(t)
	filePrefix(t)
	dest := filepath.Join(t.TempDir(), "X")
	for _, form := range [][]string{{"-p0"}, {"-p", "0"}, {"--prefetch=0"}, {"--prefetch", "0"}} {
		args := append([]string{"wal-fetch", "000000010000000000000001", dest}, form...)
		if _, errOut, code := walden(t, args...); code != 1 {
			t.Errorf("%v: code %d %s", form, code, errOut)
		}
	}
}

func TestNoPrefixIsUserErrorAndNoSubcommandWithPrefixIs127(t *testing.T) {
	clean(t)
	_, errOut, code := walden(t, "wal-push", "x")
	if code != 1 || !strings.Contains(errOut, "MSG: no storage prefix defined") {
		t.Fatalf("%d %q", code, errOut)
	}
	filePrefix(t)
	_, errOut, code = walden(t)
	if code != 127 || !strings.Contains(errOut, "subcommand not implemented") {
		t.Fatalf("%d %q", code, errOut)
	}
}

func TestUnknownSchemeIsOneClearErrorNamingTheVariable(t *testing.T) {
	clean(t)
	t.Setenv("WALE_S3_PREFIX", "swift://container/path")
	_, errOut, code := walden(t, "wal-push", "x")
	if code != 1 || !strings.Contains(errOut, "WALE_S3_PREFIX") || !strings.Contains(errOut, "swift") {
		t.Fatalf("%d %q", code, errOut)
	}
}

func TestEnvdirFlagConfiguresTheStore(t *testing.T) {
	clean(t)
	env := t.TempDir()
	store := t.TempDir()
	os.WriteFile(filepath.Join(env, "WALE_FILE_PREFIX"), []byte("file://localhost"+store+"\n"), 0o600)
	os.WriteFile(filepath.Join(env, "WALDEN_COMPRESSION"), []byte("zstd  \n"), 0o600)
	t.Setenv("WALE_FILE_PREFIX", "")
	t.Setenv("WALDEN_COMPRESSION", "")
	os.Unsetenv("WALE_FILE_PREFIX")
	os.Unsetenv("WALDEN_COMPRESSION")
	seg := filepath.Join(t.TempDir(), "000000010000000000000001")
	os.WriteFile(seg, walSegment(t, filepath.Base(seg), "wal"), 0o600)
	if _, errOut, code := walden(t, "--envdir", env, "wal-push", seg); code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(store, "wal_005", "000000010000000000000001.zst")); err != nil {
		t.Fatal(err)
	}
}

func TestMissingEnvdirIsOneClearError(t *testing.T) {
	clean(t)
	_, errOut, code := walden(t, "--envdir", "/nonexistent/env", "wal-push", "x")
	if code != 1 || !strings.Contains(errOut, "/nonexistent/env") {
		t.Fatalf("%d %q", code, errOut)
	}
}

func TestWalPushOfMissingFilePrintsErrnoOnStdoutAndExitsOne(t *testing.T) {
	clean(t)
	filePrefix(t)
	out, errOut, code := walden(t, "wal-push", "pg_wal/000000010000000000000042")
	if code != 1 || out != "[Errno 2] No such file or directory: 'pg_wal/000000010000000000000042'\n" ||
		!strings.Contains(errOut, "MSG: could not find file for wal-push") {
		t.Fatalf("%d %q %q", code, out, errOut)
	}
}

var timeRe = regexp.MustCompile(`time=\S+ pid=\d+`)

func TestWalPushAndFetchLogWALELines(t *testing.T) {
	clean(t)
	store := filePrefix(t)
	t.Setenv("WALDEN_COMPRESSION", "lzo")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "pg_wal"), 0o700)
	os.WriteFile(filepath.Join(dir, "pg_wal", "000000010000000000000001"), walSegment(t, "000000010000000000000001", "\x01\x02\x03\x00"), 0o600)
	wd, _ := os.Getwd()
	os.Chdir(dir)
	defer os.Chdir(wd)
	_, errOut, code := walden(t, "wal-push", "pg_wal/000000010000000000000001")
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	key := "file://localhost" + store + "/wal_005/000000010000000000000001.lzo"
	prefix := strings.TrimPrefix(store, "/") + "/"
	got := timeRe.ReplaceAllString(errOut, "T")
	got = regexp.MustCompile(`complete at \S+KiB/s`).ReplaceAllString(got, "complete at RKiB/s")
	got = regexp.MustCompile(`rate=\S+`).ReplaceAllString(got, "rate=R")
	want := "wal_e.worker.upload INFO     MSG: begin archiving a file\n" +
		`        DETAIL: Uploading "pg_wal/000000010000000000000001" to "` + key + `".` + "\n" +
		"        STRUCTURED: T action=push-wal key=" + key + " prefix=" + prefix + " seg=000000010000000000000001 state=begin\n" +
		"wal_e.worker.upload INFO     MSG: completed archiving to a file\n" +
		`        DETAIL: Archiving to "` + key + `" complete at RKiB/s.` + "\n" +
		"        STRUCTURED: T action=push-wal key=" + key + " prefix=" + prefix + " rate=R seg=000000010000000000000001 state=complete\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// The real lzop reads what walden wrote.
	out, err := exec.Command("lzop", "-dc", filepath.Join(store, "wal_005", "000000010000000000000001.lzo")).Output()
	if err != nil {
		t.Fatalf("lzop -dc: %v", err)
	}
	if !bytes.Equal(out, walSegment(t, "000000010000000000000001", "\x01\x02\x03\x00")) {
		t.Fatal("lzop decoded different bytes")
	}
	_, errOut, code = walden(t, "wal-fetch", "-p0", "000000010000000000000001", "pg_wal/RECOVERYXLOG")
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	got = timeRe.ReplaceAllString(errOut, "T")
	want = "wal_e.operator.backup INFO     MSG: begin wal restore\n" +
		"        STRUCTURED: T action=wal-fetch key=" + key + " prefix=" + prefix + " seg=000000010000000000000001 state=begin\n" +
		"wal_e.blobstore.file.file_util INFO     MSG: completed download and decompression\n" +
		`        DETAIL: Downloaded and decompressed "` + key + `" to "pg_wal/RECOVERYXLOG"` + "\n" +
		"        STRUCTURED: T\n" +
		"wal_e.operator.backup INFO     MSG: complete wal restore\n" +
		"        STRUCTURED: T action=wal-fetch key=" + key + " prefix=" + prefix + " seg=000000010000000000000001 state=complete\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestWalFetchOfMissingSegmentExitsOneOnTheFileBackend(t *testing.T) {
	clean(t)
	filePrefix(t)
	dest := filepath.Join(t.TempDir(), "RECOVERYHISTORY")
	_, errOut, code := walden(t, "wal-fetch", "00000002.history", dest)
	if code != 1 || !strings.Contains(errOut, "could no longer locate object") {
		t.Fatalf("%d %s", code, errOut)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("file left at destination")
	}
}

func TestWalFetchIntoUnwritableDirectoryFailsCleanly(t *testing.T) {
	clean(t)
	store := filePrefix(t)
	os.MkdirAll(filepath.Join(store, "wal_005"), 0o755)
	os.WriteFile(filepath.Join(store, "wal_005", "000000010000000000000001"), []byte("plain"), 0o644)
	_, errOut, code := walden(t, "wal-fetch", "-p0", "000000010000000000000001", "/nonexistent-dir/RECOVERYXLOG")
	if code != 200 || !strings.Contains(errOut, "/nonexistent-dir") {
		t.Fatalf("%d %s", code, errOut)
	}
}

func TestFixtureSegmentsFetchEqualToRealLzop(t *testing.T) {
	clean(t)
	store, _ := filepath.Abs("../../testdata/fixtures/wal-e/basic/store")
	t.Setenv("WALE_FILE_PREFIX", "file://localhost"+store)
	ents, err := os.ReadDir(filepath.Join(store, "wal_005"))
	if err != nil || len(ents) != 6 {
		t.Fatalf("fixture: %v %d", err, len(ents))
	}
	for _, e := range ents {
		name := strings.TrimSuffix(e.Name(), ".lzo")
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		if _, errOut, code := walden(t, "wal-fetch", "-p0", name, dest); code != 0 {
			t.Fatalf("%s: %d %s", name, code, errOut)
		}
		want, err := exec.Command("lzop", "-dc", filepath.Join(store, "wal_005", e.Name())).Output()
		if err != nil {
			t.Fatalf("lzop: %v", err)
		}
		got, _ := os.ReadFile(dest)
		if !bytes.Equal(got, want) || len(got) != 16<<20 {
			t.Fatalf("%s differs from lzop -dc (%d vs %d bytes)", name, len(got), len(want))
		}
	}
}

func TestCorruptObjectsGiveOneErrorAndNoFile(t *testing.T) {
	clean(t)
	for _, comp := range []string{"lzo", "lz4", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			store := filePrefix(t)
			t.Setenv("WALDEN_COMPRESSION", comp)
			seg := filepath.Join(t.TempDir(), "000000010000000000000003")
			os.WriteFile(seg, walSegment(t, "000000010000000000000003", "corrupt me "), 0o600)
			if _, errOut, code := walden(t, "wal-push", seg); code != 0 {
				t.Fatalf("%d %s", code, errOut)
			}
			ents, _ := os.ReadDir(filepath.Join(store, "wal_005"))
			obj := filepath.Join(store, "wal_005", ents[0].Name())
			b, _ := os.ReadFile(obj)
			for name, bad := range map[string][]byte{"truncated": b[:len(b)*2/3], "flipped": flip(b)} {
				os.WriteFile(obj, bad, 0o644)
				destDir := t.TempDir()
				_, errOut, code := walden(t, "wal-fetch", "-p0", "000000010000000000000003", filepath.Join(destDir, "RECOVERYXLOG"))
				if code != 200 {
					t.Errorf("%s: code %d, want 200 (fatal for PostgreSQL)", name, code)
				}
				if n := strings.Count(errOut, "ERROR"); n != 1 {
					t.Errorf("%s: %d error records: %s", name, n, errOut)
				}
				if left, _ := os.ReadDir(destDir); len(left) != 0 {
					t.Errorf("%s: left %v", name, left)
				}
			}
		})
	}
}

func flip(b []byte) []byte {
	c := append([]byte(nil), b...)
	for i := len(c) / 3; i < len(c)/3+64; i++ {
		c[i] ^= 0x5a
	}
	return c
}

func TestDeleteFlagsAfterTheModeAreAUsageError(t *testing.T) {
	clean(t)
	filePrefix(t)
	_, errOut, code := walden(t, "delete", "retain", "2", "--confirm")
	if code != 2 || !strings.Contains(errOut, "unrecognized arguments: --confirm") {
		t.Fatalf("%d %q", code, errOut)
	}
	if _, _, code := walden(t, "delete", "--confirm", "retain", "2"); code != 0 {
		t.Fatalf("flags before the mode: %d", code)
	}
}
