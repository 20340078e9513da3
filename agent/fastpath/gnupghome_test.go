package fastpath

import (
	"testing"

	"github.com/walden-pg/walden/config"
)

// Without a configured key, encrypted objects still decrypt with the
// keyring, so an agent with another GnuPG home must not serve the request.
func TestFingerprintCoversGnuPGHomeWithoutAConfiguredKey(t *testing.T) {
	s := &config.Settings{}
	t.Setenv("GNUPGHOME", "/var/lib/postgresql/.gnupg")
	a := Fingerprint(s)
	t.Setenv("GNUPGHOME", "/root/.gnupg")
	if b := Fingerprint(s); a == b {
		t.Fatal("the fingerprint ignores GNUPGHOME")
	}
}
