package check

import (
	"bytes"
	"io"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/gpg"
)

// keyInfo is what *gpg.Crypter tells about its key beyond blob.Crypter.
type keyInfo interface {
	CanDecrypt() bool
	Fingerprint() string
}

// checkGPG writes a probe through the same compress-then-encrypt pipeline
// as every upload, and reads it back when a secret key is at hand. A key
// that can encrypt but not decrypt passes: a primary only archives, and
// restores may happen on hosts that hold the secret key.
func checkGPG(c config.GPG, format func() (blob.Format, error)) Result {
	if !c.Enabled {
		return skip("gpg", "not configured (WALE_GPG_KEY_ID is not set)")
	}
	key := c.KeyID
	if key == "" {
		key = "in " + c.PublicKeyPath
	}
	f, err := format()
	if err != nil {
		return fail("gpg", "%v", err)
	}
	if f.Crypt == nil {
		return fail("gpg", "key %s is configured but objects would be written unencrypted", key)
	}
	name := "key " + key
	info, hasInfo := f.Crypt.(keyInfo)
	if hasInfo && info.Fingerprint() != "" {
		name += " (fingerprint " + info.Fingerprint() + ")"
	}

	probeName := ProbeDir + "gpg-probe" + f.Ext()
	want := probeContent(probeName)
	var sealed bytes.Buffer
	w, err := f.NewWriter(&sealed)
	if err != nil {
		return fail("gpg", "cannot encrypt a probe to %s: %v", name, err)
	}
	if _, err := w.Write(want); err != nil {
		w.Close()
		return fail("gpg", "cannot encrypt a probe to %s: %v", name, err)
	}
	if err := w.Close(); err != nil {
		return fail("gpg", "cannot encrypt a probe to %s: %v", name, err)
	}
	if !gpg.IsEncrypted(sealed.Bytes()) {
		return fail("gpg", "encrypting a probe to %s did not produce an OpenPGP message", name)
	}
	// A configured secret key file is always tried: CanDecrypt only knows
	// encryption subkeys, and a key whose primary key encrypts is common.
	if hasInfo && c.SecretKeyPath == "" && !info.CanDecrypt() {
		return pass("gpg", "encrypted a probe to %s; no secret key here, so decryption was not tried", name)
	}

	r, err := blob.NewReader(probeName, &sealed, f.Crypt)
	if err != nil {
		return fail("gpg", "cannot decrypt a probe encrypted to %s%s: %v", name, withSecretFile(c), err)
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail("gpg", "cannot decrypt a probe encrypted to %s%s: %v", name, withSecretFile(c), err)
	}
	if !bytes.Equal(got, want) {
		return fail("gpg", "a probe encrypted to %s decrypted to different bytes (%d, wrote %d)", name, len(got), len(want))
	}
	return pass("gpg", "encrypted and decrypted a probe with %s", name)
}

func withSecretFile(c config.GPG) string {
	if c.SecretKeyPath == "" {
		return ""
	}
	return " with the secret key in WALDEN_GPG_SECRET_KEY_PATH " + c.SecretKeyPath
}
