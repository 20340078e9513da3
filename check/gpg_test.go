package check

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walden-pg/walden/config"
)

// gpgPrimaryOnlyKey makes, with the real gpg, an RSA key whose primary key
// itself encrypts (no subkey), as older setups have, and returns its
// fingerprint and exported secret key file.
func gpgPrimaryOnlyKey(t *testing.T) (string, string) {
	t.Helper()
	home, err := os.MkdirTemp("", "gpgh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	run := func(args ...string) []byte {
		cmd := exec.Command("gpg", append([]string{"--batch", "--homedir", home}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	run("--passphrase", "", "--quick-gen-key", "primary only <p@example.invalid>", "rsa2048", "cert,encr", "never")
	var fpr string
	for _, l := range strings.Split(string(run("--with-colons", "--list-secret-keys")), "\n") {
		if f := strings.Split(l, ":"); f[0] == "fpr" && fpr == "" {
			fpr = f[9]
		}
	}
	sec := filepath.Join(t.TempDir(), "sec.asc")
	if err := os.WriteFile(sec, run("--armor", "--export-secret-keys", fpr), 0o600); err != nil {
		t.Fatal(err)
	}
	return fpr, sec
}

func TestGPGSecretKeyPathWithAnEncryptingPrimaryKeyDecryptsTheProbe(t *testing.T) {
	fpr, sec := gpgPrimaryOnlyKey(t)
	t.Setenv("GNUPGHOME", t.TempDir()) // the key file is the only secret key
	s := settings()
	s.GPG = config.GPG{KeyID: fpr, Enabled: true, SecretKeyPath: sec}
	r := checkGPG(s.GPG, input(nil, s).Format)
	if !r.OK || !strings.HasPrefix(r.Detail, "encrypted and decrypted a probe with key "+fpr) {
		t.Fatalf("got %+v", r)
	}
}

func TestGPGSecretKeyFileOfAnotherKeyIsAProblemNamingIt(t *testing.T) {
	k, other := newTestKey(t), newTestKey(t)
	t.Setenv("GNUPGHOME", t.TempDir())
	s := settings()
	s.GPG = config.GPG{KeyID: k.fpr, Enabled: true, PublicKeyPath: k.pub, SecretKeyPath: other.sec}
	r := checkGPG(s.GPG, input(nil, s).Format)
	if r.OK || !strings.Contains(r.Detail, "WALDEN_GPG_SECRET_KEY_PATH "+other.sec) {
		t.Fatalf("got %+v", r)
	}
}
