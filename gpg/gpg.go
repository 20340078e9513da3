// Package gpg encrypts and decrypts archive objects with OpenPGP so that
// walden's objects and WAL-E's are interchangeable: WAL-E piped every object
// through `gpg -e -z 0 -r KEYID` on upload and `gpg -d -q --batch` on
// download (wal-e-compat.md 4.3).
//
// Encryption is always native (ProtonMail/go-crypto) and produces what
// GnuPG 2.2 produces for `gpg -e -z 0`: PKESK v3 packets, then a
// symmetrically encrypted integrity-protected data packet (SEIPD v1, with
// MDC) holding one binary literal data packet with an empty file name, and
// no compression layer. The recipient's public key comes from
// WALDEN_GPG_PUBLIC_KEY_PATH, from WALDEN_GPG_SECRET_KEY_PATH (its public
// half), or from the GnuPG keyring via `gpg --export`.
//
// Decryption is native when WALDEN_GPG_SECRET_KEY_PATH is set; otherwise it
// runs `gpg -d -q --batch` exactly as WAL-E did, so gpg-agent, smartcards
// and the user's keyring keep working.
package gpg

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/walden-pg/walden/config"
)

// Names of the settings, used in error messages so operators know which
// variable to fix.
const (
	envPublicKey  = "WALDEN_GPG_PUBLIC_KEY_PATH"
	envSecretKey  = "WALDEN_GPG_SECRET_KEY_PATH"
	envPassphrase = "WALDEN_GPG_PASSPHRASE_PATH"
)

// gpgProgram is the GnuPG executable, looked up in PATH as WAL-E did.
const gpgProgram = "gpg"

// exportTimeout bounds `gpg --export`; it needs no agent or passphrase, so
// anything slower than this is a hung keyring (e.g. a stale lock).
const exportTimeout = time.Minute

// Crypter encrypts to one configured recipient key and decrypts either
// natively (secret key file) or through the gpg program.
//
// A nil *Crypter is what New returns when encryption is disabled; its
// Encrypt fails, Fingerprint is "", CanDecrypt is false, and Decrypt uses
// the gpg program (so an encrypted object found by auto-detection can still
// be read with the user's keyring).
type Crypter struct {
	keyID       string          // as configured, for messages
	source      string          // where the public key came from, for messages
	recipient   *openpgp.Entity // possibly restricted to one subkey ("ID!")
	fingerprint string

	// secret holds the unlocked keys from WALDEN_GPG_SECRET_KEY_PATH; nil
	// means decryption goes through the gpg program.
	secret     openpgp.EntityList
	secretPath string

	canDecryptOnce sync.Once
	canDecrypt     bool
}

// New builds a Crypter from the settings. It returns (nil, nil) when
// encryption is disabled. Every problem with the recipient key is an error
// "gpg key <KEYID> cannot be used for encryption: <reason>": walden never
// falls back to uploading plaintext when a key is configured.
func New(c config.GPG) (*Crypter, error) {
	if !c.Enabled {
		return nil, nil
	}
	cr := &Crypter{keyID: c.KeyID, secretPath: c.SecretKeyPath}
	name := c.KeyID
	if name == "" {
		name = "in " + c.PublicKeyPath
	}
	keyErr := func(format string, args ...any) error {
		return fmt.Errorf("gpg key %s cannot be used for encryption: %s", name, fmt.Sprintf(format, args...))
	}

	if c.SecretKeyPath != "" {
		secret, err := loadSecretKeys(c.SecretKeyPath, c.PassphrasePath)
		if err != nil {
			return nil, err
		}
		cr.secret = secret
	}

	var (
		candidates openpgp.EntityList
		trustOne   bool // the source already resolved the id (gpg --export)
	)
	switch {
	case c.PublicKeyPath != "":
		el, err := readKeyFile(c.PublicKeyPath)
		if err != nil {
			return nil, keyErr("%s: %v", envPublicKey, err)
		}
		candidates, cr.source = el, envPublicKey+" "+c.PublicKeyPath
	case cr.secret != nil && anyMatch(cr.secret, c.KeyID):
		// A fully native setup needs no gpg program at all: the secret
		// key file also carries the public key.
		candidates, cr.source = cr.secret, envSecretKey+" "+c.SecretKeyPath
	default:
		if c.KeyID == "" {
			return nil, keyErr("no key id and no %s", envPublicKey)
		}
		el, err := exportFromKeyring(c.KeyID)
		if err != nil {
			return nil, keyErr("%v", err)
		}
		candidates, cr.source, trustOne = el, "the GnuPG keyring", true
	}

	recipient, err := selectRecipient(candidates, c.KeyID, trustOne, time.Now())
	if err != nil {
		return nil, keyErr("%v (looked in %s)", err, cr.source)
	}
	cr.recipient = recipient
	cr.fingerprint = strings.ToUpper(hex.EncodeToString(recipient.PrimaryKey.Fingerprint))
	return cr, nil
}

// NewDecrypter returns how objects are decrypted when New returned nil
// (no recipient configured): natively with WALDEN_GPG_SECRET_KEY_PATH when
// it is set, else nil, which decrypts through the gpg program with
// whatever secret key the keyring holds, as WAL-E's `gpg -d` did.
func NewDecrypter(c config.GPG) (*Crypter, error) {
	if c.SecretKeyPath == "" {
		return nil, nil
	}
	secret, err := loadSecretKeys(c.SecretKeyPath, c.PassphrasePath)
	if err != nil {
		return nil, err
	}
	return &Crypter{secret: secret, secretPath: c.SecretKeyPath}, nil
}

// Fingerprint returns the hex fingerprint (upper case, as gpg prints it) of
// the recipient's primary key, i.e. the certificate messages are encrypted
// to; "" for a nil Crypter.
func (c *Crypter) Fingerprint() string {
	if c == nil {
		return ""
	}
	return c.fingerprint
}

// CanDecrypt reports whether Decrypt has a secret key to try: the secret
// key file holds a decryption key, or (gpg program path) gpg is installed
// and its keyring has the secret key of the configured recipient. It is a
// hint for early, friendly errors; a message may still be encrypted to a
// key that is not available.
func (c *Crypter) CanDecrypt() bool {
	if c == nil {
		return false
	}
	c.canDecryptOnce.Do(func() {
		if c.secret != nil {
			c.canDecrypt = len(c.secret.DecryptionKeys()) > 0
			return
		}
		c.canDecrypt = keyringHasSecret(c.fingerprint)
	})
	return c.canDecrypt
}

// readKeyFile parses an armored or binary OpenPGP key file.
func readKeyFile(path string) (openpgp.EntityList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	el, err := parseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return el, nil
}

func parseKeys(data []byte) (openpgp.EntityList, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("no OpenPGP key data")
	}
	var (
		el  openpgp.EntityList
		err error
	)
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN PGP")) {
		el, err = readArmoredKeys(trimmed)
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("not a readable OpenPGP key: %v", err)
	}
	if len(el) == 0 {
		return nil, errors.New("no OpenPGP key data")
	}
	return el, nil
}

// readArmoredKeys reads every armored key block in data; `gpg --armor
// --export a b` writes one block, but files concatenated by hand have more.
func readArmoredKeys(data []byte) (openpgp.EntityList, error) {
	var all openpgp.EntityList
	r := bytes.NewReader(data)
	for {
		block, err := armor.Decode(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			if len(all) > 0 {
				break // trailing text after the last block
			}
			return nil, err
		}
		if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("armored block is %q, not a key", block.Type)
		}
		el, err := openpgp.ReadKeyRing(block.Body)
		if err != nil {
			return nil, err
		}
		all = append(all, el...)
	}
	return all, nil
}

// exportFromKeyring asks gpg for the public key(s) matching keyID. gpg does
// the id resolution, so every form gpg understands works.
func exportFromKeyring(keyID string) (openpgp.EntityList, error) {
	path, err := exec.LookPath(gpgProgram)
	if err != nil {
		return nil, fmt.Errorf("gpg program not found (install GnuPG or set %s): %v", envPublicKey, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	// "--" so that a key id starting with "-" is never taken as an option.
	cmd := exec.CommandContext(ctx, path, "--batch", "--export", "--", keyID)
	var stdout bytes.Buffer
	stderr := &headBuffer{max: stderrLimit}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gpg --export failed: %v%s", err, stderr.summary())
	}
	if stdout.Len() == 0 {
		where := "the GnuPG keyring"
		if h := os.Getenv("GNUPGHOME"); h != "" {
			where += " (GNUPGHOME=" + h + ")"
		}
		return nil, fmt.Errorf("not found in %s", where)
	}
	el, err := openpgp.ReadKeyRing(&stdout)
	if err != nil || len(el) == 0 {
		return nil, fmt.Errorf("gpg --export output is not a readable key: %v", err)
	}
	return el, nil
}

// keyringHasSecret reports whether gpg is installed and holds the secret
// key with this fingerprint.
func keyringHasSecret(fingerprint string) bool {
	path, err := exec.LookPath(gpgProgram)
	if err != nil || fingerprint == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--batch", "--with-colons", "--list-secret-keys", "--", fingerprint).Output()
	return err == nil && (bytes.HasPrefix(out, []byte("sec:")) || bytes.Contains(out, []byte("\nsec:")))
}

// anyMatch reports whether keyID names a key in el.
func anyMatch(el openpgp.EntityList, keyID string) bool {
	if keyID == "" {
		return false
	}
	spec, err := parseKeySpec(keyID)
	if err != nil {
		return false
	}
	for _, e := range el {
		if _, ok := spec.match(e); ok {
			return true
		}
	}
	return false
}

// selectRecipient picks the entity keyID names, the way `gpg -r` does: of
// several matches the newest key with a usable encryption key wins
// (GnuPG 2.2 get_best_pubkey_byname, minus trust validity which walden does
// not know). trustOne accepts a lone candidate the matcher does not
// recognise, because gpg itself already resolved the id.
func selectRecipient(el openpgp.EntityList, keyID string, trustOne bool, now time.Time) (*openpgp.Entity, error) {
	if keyID == "" {
		if len(el) != 1 {
			return nil, fmt.Errorf("the key file holds %d keys; set WALE_GPG_KEY_ID to choose one", len(el))
		}
		if _, ok := el[0].EncryptionKey(now); !ok {
			return nil, fmt.Errorf("key %s has no valid encryption subkey (expired, revoked or sign-only)", fpr(el[0]))
		}
		return el[0], nil
	}
	spec, err := parseKeySpec(keyID)
	if err != nil {
		return nil, err
	}
	var matched []*openpgp.Entity
	for _, e := range el {
		if r, ok := spec.match(e); ok {
			matched = append(matched, r)
		}
	}
	if len(matched) == 0 && trustOne && len(el) == 1 {
		matched = append(matched, el[0])
	}
	if len(matched) == 0 {
		return nil, errors.New("no such key")
	}
	var usable []*openpgp.Entity
	for _, e := range matched {
		if _, ok := e.EncryptionKey(now); ok {
			usable = append(usable, e)
		}
	}
	if len(usable) == 0 {
		ids := make([]string, len(matched))
		for i, e := range matched {
			ids[i] = fpr(e)
		}
		return nil, fmt.Errorf("no valid encryption key (expired, revoked or sign-only): %s", strings.Join(ids, ", "))
	}
	sort.SliceStable(usable, func(i, j int) bool {
		return usable[i].PrimaryKey.CreationTime.After(usable[j].PrimaryKey.CreationTime)
	})
	return usable[0], nil
}

func fpr(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

// loadSecretKeys reads WALDEN_GPG_SECRET_KEY_PATH and unlocks its keys with
// the passphrase file, if any.
func loadSecretKeys(path, passphrasePath string) (openpgp.EntityList, error) {
	el, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("gpg secret key %s: %v", envSecretKey, err)
	}
	var locked []*packet.PrivateKey
	hasSecret := false
	for _, e := range el {
		for _, k := range privateKeys(e) {
			hasSecret = true
			if k.Encrypted {
				locked = append(locked, k)
			}
		}
	}
	if !hasSecret {
		return nil, fmt.Errorf("gpg secret key %s %s holds no secret key material (is it a public key?)", envSecretKey, path)
	}
	// The passphrase file is vetted even when no key needs it: a
	// world-readable one is a leak to fix either way.
	var pass []byte
	if passphrasePath != "" {
		if pass, err = readPassphrase(passphrasePath); err != nil {
			return nil, err
		}
		defer clear(pass)
	}
	if len(locked) == 0 {
		return el, nil
	}
	if passphrasePath == "" {
		return nil, fmt.Errorf("gpg secret key %s %s is passphrase-protected but %s is not set", envSecretKey, path, envPassphrase)
	}
	// Key by key so that the error names the key that did not unlock;
	// never include the passphrase or the library's wording around it.
	for _, k := range locked {
		if err := k.Decrypt(pass); err != nil {
			return nil, fmt.Errorf("gpg secret key %s: cannot unlock key %s with the passphrase from %s (wrong passphrase?)",
				envSecretKey, k.KeyIdString(), envPassphrase)
		}
	}
	return el, nil
}

// privateKeys lists the entity's real (non-stub) private keys.
func privateKeys(e *openpgp.Entity) []*packet.PrivateKey {
	var keys []*packet.PrivateKey
	if e.PrivateKey != nil && !e.PrivateKey.Dummy() {
		keys = append(keys, e.PrivateKey)
	}
	for _, s := range e.Subkeys {
		if s.PrivateKey != nil && !s.PrivateKey.Dummy() {
			keys = append(keys, s.PrivateKey)
		}
	}
	return keys
}

// readPassphrase returns the first line of the passphrase file. A file
// others can read defeats the point of protecting the key, so it is refused.
func readPassphrase(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gpg passphrase %s: %v", envPassphrase, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("gpg passphrase %s: %v", envPassphrase, err)
	}
	if st.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("gpg passphrase %s %s is world-readable (mode %04o); run chmod o-rwx on it",
			envPassphrase, path, st.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("gpg passphrase %s: %v", envPassphrase, err)
	}
	line := data
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	pass := bytes.Clone(line)
	clear(data)
	return pass, nil
}
