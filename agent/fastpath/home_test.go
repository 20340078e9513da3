package fastpath

import (
	"os"
	"os/user"
	"testing"

	"github.com/walden-pg/walden/config"
)

// TestFingerprintCountsAMissingHomeAsTheUsersHome: archive_command under
// pg_ctlcluster runs without HOME while the agent under systemd has the
// user's home; the SDKs and gpg read the same files either way, so the
// fast path must not be refused for it. Another HOME still differs.
func TestFingerprintCountsAMissingHomeAsTheUsersHome(t *testing.T) {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	s := &config.Settings{}
	t.Setenv("HOME", u.HomeDir)
	withHome := Fingerprint(s)
	t.Setenv("HOME", "")
	if got := Fingerprint(s); got != withHome {
		t.Errorf("an empty HOME fingerprints differently from HOME=%s", u.HomeDir)
	}
	os.Unsetenv("HOME")
	if got := Fingerprint(s); got != withHome {
		t.Errorf("an unset HOME fingerprints differently from HOME=%s", u.HomeDir)
	}
	t.Setenv("HOME", "/nonexistent/elsewhere")
	if got := Fingerprint(s); got == withHome {
		t.Errorf("HOME=/nonexistent/elsewhere fingerprints as HOME=%s", u.HomeDir)
	}
}
