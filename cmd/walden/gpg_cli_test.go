package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// newKeyring makes a GnuPG home with one unprotected key and returns its
// e-mail user id.
func newKeyring(t *testing.T, email string) string {
	t.Helper()
	home, err := os.MkdirTemp("", "walden-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	out, err := exec.Command("gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
		"--quick-gen-key", "walden test <"+email+">", "future-default", "default", "never").CombinedOutput()
	if err != nil {
		t.Fatalf("gpg --quick-gen-key: %v\n%s", err, out)
	}
	return home
}

func gpgCmd(home string, args ...string) *exec.Cmd {
	return exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--quiet", "--trust-model", "always"}, args...)...)
}

func TestWalPushEncryptsSoRealGpgAndLzopRestoreIt(t *testing.T) {
	clean(t)
	home := newKeyring(t, "archive@walden.invalid")
	t.Setenv("GNUPGHOME", home)
	t.Setenv("WALE_GPG_KEY_ID", "archive@walden.invalid")
	t.Setenv("WALDEN_COMPRESSION", "lzo")
	store := filePrefix(t)
	seg := filepath.Join(t.TempDir(), "000000010000000000000005")
	data := walSegment(t, "000000010000000000000005", "encrypted wal ")
	os.WriteFile(seg, data, 0o600)
	if _, errOut, code := walden(t, "wal-push", seg); code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	obj := filepath.Join(store, "wal_005", "000000010000000000000005.lzo")
	raw, _ := os.ReadFile(obj)
	if bytes.Contains(raw, []byte("encrypted wal")) || bytes.HasPrefix(raw, []byte("\x89LZO")) {
		t.Fatal("object is not encrypted")
	}
	plain, err := gpgCmd(home, "-d", obj).Output()
	if err != nil {
		t.Fatalf("gpg -d: %v", err)
	}
	lz := exec.Command("lzop", "-dc")
	lz.Stdin = bytes.NewReader(plain)
	got, err := lz.Output()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("gpg -d | lzop -dc differs: %v", err)
	}
	// And walden reads it back through the keyring (gpg and its agent).
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, errOut, code := walden(t, "wal-fetch", "-p0", "000000010000000000000005", dest); code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatal("wal-fetch returned different bytes")
	}
}

func TestWalFetchDecryptsWhatGpgWroteFromKeyringAndFromKeyFiles(t *testing.T) {
	clean(t)
	home := newKeyring(t, "wale@walden.invalid")
	store := filePrefix(t)
	data := walSegment(t, "000000010000000000000009", "\x07\x00\x00\x01")
	lz := exec.Command("lzop", "-c")
	lz.Stdin = bytes.NewReader(data)
	compressed, err := lz.Output()
	if err != nil {
		t.Fatal(err)
	}
	// Exactly what WAL-E ran: lzop -c | gpg -e -z 0 -r KEY.
	enc := gpgCmd(home, "-e", "-z", "0", "-r", "wale@walden.invalid")
	enc.Stdin = bytes.NewReader(compressed)
	ct, err := enc.Output()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(store, "wal_005"), 0o755)
	os.WriteFile(filepath.Join(store, "wal_005", "000000010000000000000009.lzo"), ct, 0o644)

	t.Run("keyring", func(t *testing.T) {
		t.Setenv("GNUPGHOME", home)
		t.Setenv("WALE_GPG_KEY_ID", "wale@walden.invalid")
		dest := filepath.Join(t.TempDir(), "X")
		if _, errOut, code := walden(t, "wal-fetch", "-p0", "000000010000000000000009", dest); code != 0 {
			t.Fatalf("%d %s", code, errOut)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
			t.Fatal("differs")
		}
	})
	t.Run("key files", func(t *testing.T) {
		dir := t.TempDir()
		pub, _ := gpgCmd(home, "--export", "wale@walden.invalid").Output()
		sec, _ := gpgCmd(home, "--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys", "wale@walden.invalid").Output()
		os.WriteFile(filepath.Join(dir, "pub.gpg"), pub, 0o600)
		os.WriteFile(filepath.Join(dir, "sec.gpg"), sec, 0o600)
		t.Setenv("GNUPGHOME", t.TempDir()) // an empty keyring: key files only
		t.Setenv("WALDEN_GPG_PUBLIC_KEY_PATH", filepath.Join(dir, "pub.gpg"))
		t.Setenv("WALDEN_GPG_SECRET_KEY_PATH", filepath.Join(dir, "sec.gpg"))
		dest := filepath.Join(t.TempDir(), "X")
		if _, errOut, code := walden(t, "wal-fetch", "-p0", "000000010000000000000009", dest); code != 0 {
			t.Fatalf("%d %s", code, errOut)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
			t.Fatal("differs")
		}
	})
	t.Run("a key we do not have", func(t *testing.T) {
		other := newKeyring(t, "other@walden.invalid")
		t.Setenv("GNUPGHOME", other)
		t.Setenv("WALE_GPG_KEY_ID", "other@walden.invalid")
		destDir := t.TempDir()
		_, errOut, code := walden(t, "wal-fetch", "-p0", "000000010000000000000009", filepath.Join(destDir, "X"))
		if code != 200 || !strings.Contains(errOut, "ERROR") {
			t.Fatalf("%d %s", code, errOut)
		}
		if left, _ := os.ReadDir(destDir); len(left) != 0 {
			t.Fatalf("left %v", left)
		}
	})
}

func TestConfiguredKeyThatCannotBeFoundNeverUploadsPlaintext(t *testing.T) {
	clean(t)
	t.Setenv("GNUPGHOME", t.TempDir())
	t.Setenv("WALE_GPG_KEY_ID", "nobody@walden.invalid")
	store := filePrefix(t)
	seg := filepath.Join(t.TempDir(), "000000010000000000000001")
	os.WriteFile(seg, []byte("secret wal"), 0o600)
	_, errOut, code := walden(t, "wal-push", seg)
	if code == 0 || !strings.Contains(errOut, "nobody@walden.invalid") {
		t.Fatalf("%d %s", code, errOut)
	}
	if ents, _ := os.ReadDir(filepath.Join(store, "wal_005")); len(ents) != 0 {
		t.Fatalf("uploaded %v", ents)
	}
}
