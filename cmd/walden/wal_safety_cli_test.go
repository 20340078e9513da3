package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
)

const (
	sseg1 = "000000010000000000000001"
	sseg2 = "000000010000000000000002"
	sseg3 = "000000010000000000000003"
)

// pushSegment writes a valid segment called name into dir and wal-pushes it.
func pushSegment(t *testing.T, dir, name, fill string) []byte {
	t.Helper()
	data := walSegment(t, name, fill)
	p := filepath.Join(dir, name)
	os.WriteFile(p, data, 0o600)
	if _, errOut, code := walden(t, "wal-push", p); code != 0 {
		t.Fatalf("wal-push %s: %d %s", name, code, errOut)
	}
	return data
}

func ageTree(root string, d time.Duration) {
	old := time.Now().Add(-d)
	filepath.WalkDir(root, func(p string, _ os.DirEntry, _ error) error { return os.Chtimes(p, old, old) })
}

func TestWalFetchExitsOneOnlyForNotFoundAnd200ForEveryOtherFailure(t *testing.T) {
	clean(t)
	store := filePrefix(t)
	src := t.TempDir()
	pushSegment(t, src, sseg1, "one")
	pushSegment(t, src, sseg3, "three")
	fetch := func(args ...string) (string, int, string) {
		t.Helper()
		dir := t.TempDir()
		dest := filepath.Join(dir, "RECOVERYXLOG")
		_, errOut, code := walden(t, append(append([]string{"wal-fetch", "-p0"}, args...), dest)...)
		if left, _ := os.ReadDir(dir); code != 0 && len(left) != 0 {
			t.Errorf("%v: left %v", args, left)
		}
		return errOut, code, dest
	}
	if errOut, code, _ := fetch("000000010000000000000004"); code != 1 {
		t.Errorf("end of the archive: exit %d, want 1\n%s", code, errOut)
	}
	if errOut, code, _ := fetch("00000002.history"); code != 1 {
		t.Errorf("missing history: exit %d, want 1\n%s", code, errOut)
	}
	// A segment missing between stored ones, once the later one is old
	// enough not to be an upload in flight.
	if errOut, code, _ := fetch(sseg2); code != 1 || !strings.Contains(errOut, "not yet in the archive although a later one is") {
		t.Errorf("gap next to a fresh upload: exit %d, want 1\n%s", code, errOut)
	}
	ageTree(store, 2*time.Hour)
	if errOut, code, _ := fetch(sseg2); code != 200 || !strings.Contains(errOut, "WAL segment "+sseg2+" is missing from the archive") {
		t.Errorf("gap: exit %d, want 200\n%s", code, errOut)
	}
	// A truncated object.
	obj := filepath.Join(store, "wal_005", sseg3+".lz4")
	b, _ := os.ReadFile(obj)
	os.WriteFile(obj, b[:len(b)/2], 0o644)
	if errOut, code, _ := fetch(sseg3); code != 200 || strings.Count(errOut, "ERROR") != 1 {
		t.Errorf("truncated object: exit %d, want 200\n%s", code, errOut)
	}
	// A zero-length object.
	os.WriteFile(obj, nil, 0o644)
	if errOut, code, _ := fetch(sseg3); code != 200 {
		t.Errorf("empty object: exit %d, want 200\n%s", code, errOut)
	}
	// Names that are not WAL file names never reach the store.
	os.WriteFile(filepath.Join(filepath.Dir(store), "x"), walSegment(t, sseg1, "outside"), 0o644)
	for _, n := range []string{"../../x", "../x", "wal_005/" + sseg1, "RECOVERYXLOG"} {
		errOut, code, dest := fetch(n)
		if code != 200 || !strings.Contains(errOut, "usage: walden wal-fetch") || !strings.Contains(errOut, "error: WAL_SEGMENT") {
			t.Errorf("%q: exit %d, want 200 with a usage error\n%s", n, code, errOut)
		}
		if _, err := os.Stat(dest); err == nil {
			t.Errorf("%q was served", n)
		}
	}
	// An unreachable store.
	t.Setenv("WALE_FILE_PREFIX", "")
	os.Unsetenv("WALE_FILE_PREFIX")
	t.Setenv("WALE_S3_PREFIX", "s3://acme-pg-archive/prod/db1")
	t.Setenv("WALE_S3_ENDPOINT", "http+path://127.0.0.1:1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDWALDENTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "walden-secret-never-logged")
	t.Setenv("WALE_RETRIES", "1")
	if errOut, code, _ := fetch(sseg1); code != 200 || strings.Contains(errOut, "walden-secret-never-logged") {
		t.Errorf("unreachable store: exit %d, want 200\n%s", code, errOut)
	}
	// A configuration that cannot be read.
	t.Setenv("WALDEN_COMPRESSION", "bogus")
	if errOut, code, _ := fetch(sseg1); code != 200 || !strings.Contains(errOut, "WALDEN_COMPRESSION") {
		t.Errorf("bad configuration: exit %d, want 200\n%s", code, errOut)
	}
}

func TestWalFetchNeverServesJunkFromThePrefetchDirectory(t *testing.T) {
	clean(t)
	filePrefix(t)
	want := pushSegment(t, t.TempDir(), sseg1, "real")
	pgwal := filepath.Join(t.TempDir(), "pg_wal")
	os.MkdirAll(filepath.Join(pgwal, ".wal-e", "prefetch", "running"), 0o700)
	for _, junk := range [][]byte{[]byte("hello"), make([]byte, 1<<20)} {
		// Where WAL-E's own prefetch put its files.
		os.WriteFile(filepath.Join(pgwal, ".wal-e", "prefetch", sseg1), junk, 0o600)
		dest := filepath.Join(pgwal, "RECOVERYXLOG")
		if _, errOut, code := walden(t, "wal-fetch", "-p1", sseg1, dest); code != 0 {
			t.Fatalf("%d %s", code, errOut)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
			t.Fatalf("served %d bytes of junk", len(got))
		}
		if _, err := os.Stat(filepath.Join(pgwal, ".wal-e", "prefetch", sseg1)); !os.IsNotExist(err) {
			t.Fatal("WAL-E's stale prefetched file was left")
		}
	}
}

func TestWalPushRefusesTruncatedSegmentsAndThenArchivesTheRealOne(t *testing.T) {
	clean(t)
	store := filePrefix(t)
	dir := t.TempDir()
	p := filepath.Join(dir, sseg1)
	real := walSegment(t, sseg1, "real")
	for _, bad := range [][]byte{nil, real[:5], real[:8<<20]} {
		os.WriteFile(p, bad, 0o600)
		_, errOut, code := walden(t, "wal-push", p)
		if code == 0 || !strings.Contains(errOut, "refusing to archive "+p) || !strings.Contains(errOut, sseg1+" is not a valid WAL segment") {
			t.Fatalf("%d bytes: exit %d\n%s", len(bad), code, errOut)
		}
		if ents, _ := os.ReadDir(filepath.Join(store, "wal_005")); len(ents) != 0 {
			t.Fatalf("%d bytes: stored %v", len(bad), ents)
		}
	}
	os.WriteFile(p, real, 0o600)
	if _, errOut, code := walden(t, "wal-push", p); code != 0 {
		t.Fatalf("the real segment: %d %s", code, errOut)
	}
}

func TestWalPushPoolExitStatusIsTheRequestedSegments(t *testing.T) {
	clean(t)
	filePrefix(t)
	pgwal := filepath.Join(t.TempDir(), "pg_wal")
	os.MkdirAll(filepath.Join(pgwal, "archive_status"), 0o700)
	pushSegment(t, pgwal, sseg2, "first primary")
	// Another primary's sseg2 waits as .ready beside the requested sseg1.
	for n, fill := range map[string]string{sseg1: "one", sseg2: "second primary", sseg3: "three"} {
		os.WriteFile(filepath.Join(pgwal, n), walSegment(t, n, fill), 0o600)
		os.WriteFile(filepath.Join(pgwal, "archive_status", n+".ready"), nil, 0o600)
	}
	_, errOut, code := walden(t, "wal-push", "--pool-size", "4", filepath.Join(pgwal, sseg1))
	if code != 0 || !strings.Contains(errOut, "could not archive a parallel segment") || !strings.Contains(errOut, sseg2) {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(pgwal, "archive_status", sseg2+".ready")); err != nil {
		t.Fatal("the failed segment's .ready is gone")
	}
	if _, err := os.Stat(filepath.Join(pgwal, "archive_status", sseg3+".done")); err != nil {
		t.Fatal("the archived parallel segment is not .done")
	}
}

// TestConcurrentWalPushesOfOneNameNeverReplaceEachOther races two real
// wal-push processes on one segment name: with different content exactly
// one succeeds and the store keeps its content; with the same content both
// succeed.
func TestConcurrentWalPushesOfOneNameNeverReplaceEachOther(t *testing.T) {
	clean(t)
	bin := pgtest.BuildWalden(t)
	store := filePrefix(t)
	a, b := t.TempDir(), t.TempDir()
	const rounds = 30
	for i := 0; i < rounds; i++ {
		name := walSegName(1, uint32(i+1))
		same := i%5 == 4
		da := walSegment(t, name, "primary A ")
		db := walSegment(t, name, "primary B ")
		if same {
			db = da
		}
		os.WriteFile(filepath.Join(a, name), da, 0o600)
		os.WriteFile(filepath.Join(b, name), db, 0o600)
		var wg sync.WaitGroup
		codes, outs := make([]int, 2), make([]string, 2)
		for j, dir := range []string{a, b} {
			wg.Add(1)
			go func(j int, dir string) {
				defer wg.Done()
				cmd := exec.Command(bin, "wal-push", filepath.Join(dir, name))
				var errb bytes.Buffer
				cmd.Stderr = &errb
				err := cmd.Run()
				codes[j], outs[j] = cmd.ProcessState.ExitCode(), errb.String()
				if err != nil && cmd.ProcessState == nil {
					t.Error(err)
				}
			}(j, dir)
		}
		wg.Wait()
		dest := filepath.Join(t.TempDir(), "X")
		if _, errOut, code := walden(t, "wal-fetch", "-p0", name, dest); code != 0 {
			t.Fatalf("round %d: fetch: %d %s", i, code, errOut)
		}
		got, _ := os.ReadFile(dest)
		if same {
			if codes[0] != 0 || codes[1] != 0 || !bytes.Equal(got, da) {
				t.Fatalf("round %d, same content: exits %v\n%s\n%s", i, codes, outs[0], outs[1])
			}
			continue
		}
		winners := 0
		for j, c := range codes {
			if c == 0 {
				winners++
				if want := [][]byte{da, db}[j]; !bytes.Equal(got, want) {
					t.Fatalf("round %d: push %d exited 0 but the store holds the other content", i, j)
				}
			} else if !strings.Contains(outs[j], "refusing to overwrite") {
				t.Fatalf("round %d: push %d failed without a conflict: %s", i, j, outs[j])
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d pushes exited 0, want exactly 1\n%s\n%s", i, winners, outs[0], outs[1])
		}
	}
	_ = store
}

func walSegName(tli, seg uint32) string {
	return strings.ToUpper(strings.Join([]string{hex8(tli), hex8(0), hex8(seg)}, ""))
}

func hex8(v uint32) string {
	const digits = "0123456789ABCDEF"
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xF]
		v >>= 4
	}
	return string(b)
}

func TestWalFetchDecryptsWithTheKeyringAloneAsGpgDid(t *testing.T) {
	clean(t)
	home := newKeyring(t, "keyring@walden.invalid")
	t.Setenv("GNUPGHOME", home)
	t.Setenv("WALE_GPG_KEY_ID", "keyring@walden.invalid")
	store := filePrefix(t)
	data := pushSegment(t, t.TempDir(), sseg1, "encrypted ")
	ct, _ := os.ReadFile(filepath.Join(store, "wal_005", sseg1+".lz4"))
	if bytes.Contains(ct, []byte("encrypted encrypted")) {
		t.Fatal("stored in clear")
	}
	t.Setenv("WALE_GPG_KEY_ID", "")
	os.Unsetenv("WALE_GPG_KEY_ID")

	t.Run("keyring", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "X")
		if _, errOut, code := walden(t, "wal-fetch", "-p0", sseg1, dest); code != 0 {
			t.Fatalf("%d %s", code, errOut)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
			t.Fatal("differs")
		}
	})
	t.Run("secret key file", func(t *testing.T) {
		sec, err := gpgCmd(home, "--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys", "keyring@walden.invalid").Output()
		if err != nil || len(sec) == 0 {
			t.Fatalf("export: %v", err)
		}
		kf := filepath.Join(t.TempDir(), "sec.gpg")
		os.WriteFile(kf, sec, 0o600)
		t.Setenv("GNUPGHOME", t.TempDir()) // an empty keyring
		t.Setenv("WALDEN_GPG_SECRET_KEY_PATH", kf)
		dest := filepath.Join(t.TempDir(), "X")
		if _, errOut, code := walden(t, "wal-fetch", "-p0", sseg1, dest); code != 0 {
			t.Fatalf("%d %s", code, errOut)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
			t.Fatal("differs")
		}
	})
	t.Run("no secret key anywhere", func(t *testing.T) {
		t.Setenv("GNUPGHOME", t.TempDir())
		dir := t.TempDir()
		_, errOut, code := walden(t, "wal-fetch", "-p0", sseg1, filepath.Join(dir, "X"))
		if code != 200 || !strings.Contains(errOut, "ERROR") {
			t.Fatalf("%d %s", code, errOut)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("left %v", left)
		}
	})
}

func TestWalFetchRefusesPlaintextFromAnEncryptedArchiveUnlessAllowed(t *testing.T) {
	clean(t)
	home := newKeyring(t, "plain@walden.invalid")
	t.Setenv("GNUPGHOME", home)
	filePrefix(t)
	data := pushSegment(t, t.TempDir(), sseg1, "plaintext ")
	t.Setenv("WALE_GPG_KEY_ID", "plain@walden.invalid")
	dir := t.TempDir()
	_, errOut, code := walden(t, "wal-fetch", "-p0", sseg1, filepath.Join(dir, "X"))
	if code != 200 || !strings.Contains(errOut, "is not encrypted although encryption is configured") {
		t.Fatalf("%d %s", code, errOut)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
	t.Setenv("WALDEN_ALLOW_PLAINTEXT", "true")
	dest := filepath.Join(dir, "X")
	_, errOut, code = walden(t, "wal-fetch", "-p0", sseg1, dest)
	if code != 0 || !strings.Contains(errOut, "WARNING  MSG: accepted a plaintext object from an encrypted archive") {
		t.Fatalf("%d %s", code, errOut)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatal("differs")
	}
}
