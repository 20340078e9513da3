package gpg

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walden-pg/walden/config"
)

func newCrypter(t *testing.T, c config.GPG) *Crypter {
	t.Helper()
	c.Enabled = true
	cr, err := New(c)
	if err != nil {
		t.Fatalf("New(%+v): %v", c, err)
	}
	if cr == nil {
		t.Fatalf("New(%+v) returned a nil Crypter", c)
	}
	return cr
}

func encryptAll(t *testing.T, cr *Crypter, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := cr.Encrypt(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decryptAll returns the plaintext and the first error of Decrypt, Read or
// Close, the way a caller sees it.
func decryptAll(cr *Crypter, msg []byte) ([]byte, error) {
	rc, err := cr.Decrypt(bytes.NewReader(msg))
	if err != nil {
		return nil, err
	}
	out, rerr := io.ReadAll(rc)
	cerr := rc.Close()
	if rerr != nil {
		return out, rerr
	}
	return out, cerr
}

func mustDecrypt(t *testing.T, cr *Crypter, msg, want []byte) {
	t.Helper()
	got, err := decryptAll(cr, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("decrypted %d bytes, want %d identical bytes", len(got), len(want))
	}
}

func TestDisabledSettingsGiveNilCrypter(t *testing.T) {
	cr, err := New(config.GPG{})
	if err != nil || cr != nil {
		t.Fatalf("New(disabled) = %v, %v; want nil, nil", cr, err)
	}
	if cr.Fingerprint() != "" || cr.CanDecrypt() {
		t.Fatal("nil Crypter must report no key")
	}
	var buf bytes.Buffer
	if w, err := cr.Encrypt(&buf); err == nil || w != nil || buf.Len() != 0 {
		t.Fatalf("nil Crypter Encrypt = %v, %v, wrote %d bytes; want an error and nothing written", w, err, buf.Len())
	}
}

func TestKeyringKeyEncryptionIsDecryptedByRealGpg(t *testing.T) {
	useKeyring(t)
	cr := newCrypter(t, config.GPG{KeyID: fx.main.email})
	if cr.Fingerprint() != fx.main.fpr {
		t.Fatalf("Fingerprint = %s, want %s", cr.Fingerprint(), fx.main.fpr)
	}
	plain := []byte("WAL segment bytes\x00\x01\x02 and more\n")
	msg := encryptAll(t, cr, plain)
	if got := gpgDecrypt(t, bytes.NewReader(msg)); !bytes.Equal(got, plain) {
		t.Fatalf("gpg -d = %q, want %q", got, plain)
	}
}

// The packet layout is what `gpg -e -z 0` writes (wal-e-compat 4.3), so the
// objects are indistinguishable from WAL-E's.
func TestEncryptedMessageHasGpgEncryptZ0PacketLayout(t *testing.T) {
	useKeyring(t)
	cr := newCrypter(t, config.GPG{KeyID: fx.main.fpr})
	msg := encryptAll(t, cr, []byte("layout"))
	out, err := runGPG(os.Getenv("GNUPGHOME"), bytes.NewReader(msg), "--batch", "--list-packets")
	if err != nil {
		t.Fatal(err)
	}
	listing := string(out)
	for _, want := range []string{
		":pubkey enc packet: version 3",
		"keyid " + fx.main.encID,
		"mdc_method: 2", // SEIPD v1 with MDC
		"mode b (62)",   // binary literal data
		`name=""`,
	} {
		if !strings.Contains(listing, want) {
			t.Errorf("packet listing lacks %q:\n%s", want, listing)
		}
	}
	for _, bad := range []string{":compressed packet:", ":aead encrypted packet:", "version 2"} {
		if strings.Contains(listing, bad) {
			t.Errorf("packet listing has %q:\n%s", bad, listing)
		}
	}
}

// chunkReader hands out data in small, odd-sized pieces so that streaming
// code paths see many partial reads and writes.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

func TestLargeStreamRoundTripsThroughRealGpgAndBothDecryptPaths(t *testing.T) {
	useKeyring(t)
	plain := randomBytes(2, 20<<20)
	want := sha256.Sum256(plain)
	cr := newCrypter(t, config.GPG{KeyID: fx.main.id})

	// Stream walden's output straight into gpg -d, never holding the
	// whole ciphertext.
	pr, pw := io.Pipe()
	go func() {
		w, err := cr.Encrypt(pw)
		if err == nil {
			_, err = io.CopyBuffer(w, &chunkReader{data: plain, n: 77_777}, make([]byte, 100_000))
			if err == nil {
				err = w.Close()
			}
		}
		pw.CloseWithError(err)
	}()
	if got := sha256.Sum256(gpgDecrypt(t, pr)); got != want {
		t.Fatal("gpg -d of a 20 MiB walden stream differs from the plaintext")
	}

	msg := encryptAll(t, cr, plain)
	native := newCrypter(t, config.GPG{KeyID: fx.main.id, SecretKeyPath: fx.mainSec})
	for name, c := range map[string]*Crypter{"gpg program": cr, "secret key file": native} {
		rc, err := c.Decrypt(&chunkReader{data: msg, n: 5000})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, rc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("%s: Close: %v", name, err)
		}
		if !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("%s: 20 MiB decryption differs from the plaintext", name)
		}
	}
}

func TestGpgEncryptedMessageDecryptsViaGpgProgram(t *testing.T) {
	useKeyring(t)
	cr := newCrypter(t, config.GPG{KeyID: fx.main.email})
	if !cr.CanDecrypt() {
		t.Fatal("CanDecrypt = false although the keyring holds the secret key")
	}
	mustDecrypt(t, cr, fx.msgMain, fx.plain)
	mustDecrypt(t, cr, fx.msgRSA, fx.plain) // gpg finds whichever secret key the message needs
}

func TestGpgEncryptedMessageDecryptsWithSecretKeyFiles(t *testing.T) {
	// No keys in GNUPGHOME: everything must come from the files.
	emptyHome(t)
	passFile := writeFile(t, "pass", []byte(protPassphrase+"\n"), 0o600)
	for _, tc := range []struct {
		name string
		c    config.GPG
		msg  []byte
	}{
		{"binary unprotected", config.GPG{KeyID: fx.main.email, SecretKeyPath: fx.mainSec}, fx.msgMain},
		{"armored unprotected", config.GPG{KeyID: fx.main.email, SecretKeyPath: fx.mainSecAsc}, fx.msgMain},
		{"rsa", config.GPG{KeyID: fx.rsa.email, SecretKeyPath: fx.rsaSec}, fx.msgRSA},
		{"passphrase-protected", config.GPG{KeyID: fx.prot.email, SecretKeyPath: fx.protSec, PassphrasePath: passFile}, fx.msgProt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := newCrypter(t, tc.c)
			if !cr.CanDecrypt() {
				t.Fatal("CanDecrypt = false with a secret key file")
			}
			mustDecrypt(t, cr, tc.msg, fx.plain)
			// The same Crypter also encrypts (public half of the secret
			// file) and reads its own output.
			mine := encryptAll(t, cr, []byte("round trip"))
			mustDecrypt(t, cr, mine, []byte("round trip"))
		})
	}
}

func TestRSAKeyEncryptionIsDecryptedByRealGpg(t *testing.T) {
	useKeyring(t)
	cr := newCrypter(t, config.GPG{KeyID: fx.rsa.fpr})
	msg := encryptAll(t, cr, fx.plain)
	if got := gpgDecrypt(t, bytes.NewReader(msg)); !bytes.Equal(got, fx.plain) {
		t.Fatal("gpg -d of an RSA-encrypted walden message differs")
	}
}

func TestPublicKeyFileIsUsedWithoutTheKeyring(t *testing.T) {
	for _, path := range []string{fx.mainPub, fx.mainPubAsc} {
		emptyHome(t) // New must not need the keyring
		cr := newCrypter(t, config.GPG{KeyID: fx.main.id, PublicKeyPath: path})
		msg := encryptAll(t, cr, []byte("from a key file"))
		useKeyring(t)
		if got := gpgDecrypt(t, bytes.NewReader(msg)); string(got) != "from a key file" {
			t.Fatalf("%s: gpg -d = %q", path, got)
		}
	}
	// Without a key id, a file holding exactly one key is enough.
	emptyHome(t)
	cr := newCrypter(t, config.GPG{PublicKeyPath: fx.mainPubAsc})
	if cr.Fingerprint() != fx.main.fpr {
		t.Fatalf("Fingerprint = %s, want %s", cr.Fingerprint(), fx.main.fpr)
	}
	if cr.CanDecrypt() {
		t.Fatal("CanDecrypt = true with an empty keyring and no secret key file")
	}
}

func TestKeyIDFormsSelectTheKeyLikeGpg(t *testing.T) {
	all, err := os.ReadFile(fx.allPub)
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(fx.otherPub)
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "ring.pub", append(all, other...), 0o600)
	spaced := ""
	for i := 0; i < 40; i += 4 {
		spaced += fx.main.fpr[i:i+4] + " "
	}
	forms := []string{
		fx.main.fpr,
		strings.ToLower(fx.main.fpr),
		"0x" + fx.main.fpr,
		fx.main.id,
		"0x" + fx.main.id,
		fx.main.id[8:], // short id
		fx.main.encID,  // a subkey id names its key
		fx.main.encID + "!",
		spaced,
		fx.main.email,
		"<" + fx.main.email + ">",
		"@test@walden",
		"=walden test <test@walden.invalid>",
		"WALDEN TEST",
	}
	for _, id := range forms {
		cr, err := New(config.GPG{Enabled: true, KeyID: id, PublicKeyPath: file})
		if err != nil {
			t.Errorf("key id %q: %v", id, err)
			continue
		}
		if cr.Fingerprint() != fx.main.fpr {
			t.Errorf("key id %q selected %s, want %s", id, cr.Fingerprint(), fx.main.fpr)
		}
	}
	// The keyring path hands the id to gpg --export and must agree.
	useKeyring(t)
	for _, id := range []string{fx.main.id, fx.main.id[8:], fx.main.email, "walden test"} {
		cr, err := New(config.GPG{Enabled: true, KeyID: id})
		if err != nil {
			t.Errorf("keyring, key id %q: %v", id, err)
		} else if cr.Fingerprint() != fx.main.fpr {
			t.Errorf("keyring, key id %q selected %s", id, cr.Fingerprint())
		}
	}
}

func TestUnusableKeyFailsNamingTheKeyAndNeverYieldsAnEncrypter(t *testing.T) {
	useKeyring(t)
	garbage := writeFile(t, "garbage.pub", []byte("this is not a key\n"), 0o600)
	unreadable := writeFile(t, "unreadable.pub", []byte("x"), 0o000)
	for _, tc := range []struct {
		name string
		c    config.GPG
	}{
		{"not in keyring", config.GPG{KeyID: "nobody@walden.invalid"}},
		{"missing key file", config.GPG{KeyID: fx.main.id, PublicKeyPath: "/nonexistent/walden.pub"}},
		{"garbage key file", config.GPG{KeyID: fx.main.id, PublicKeyPath: garbage}},
		{"unreadable key file", config.GPG{KeyID: fx.main.id, PublicKeyPath: unreadable}},
		{"id not in key file", config.GPG{KeyID: fx.other.id, PublicKeyPath: fx.mainPub}},
		// The RSA primary key is sign-only; "!" forbids using its subkey.
		{"sign-only key forced with !", config.GPG{KeyID: fx.rsa.fpr + "!"}},
		{"malformed 0x id", config.GPG{KeyID: "0x1234"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "unreadable key file" && os.Geteuid() == 0 {
				// root reads mode 000 files; use a directory instead.
				tc.c.PublicKeyPath = t.TempDir()
			}
			tc.c.Enabled = true
			cr, err := New(tc.c)
			if err == nil {
				t.Fatalf("New succeeded (fingerprint %s)", cr.Fingerprint())
			}
			if cr != nil {
				t.Fatal("New returned a Crypter together with an error")
			}
			prefix := "gpg key " + tc.c.KeyID + " cannot be used for encryption: "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

func TestEncryptCloseFinishesMessageButLeavesWriterOpen(t *testing.T) {
	useKeyring(t)
	cr := newCrypter(t, config.GPG{KeyID: fx.main.fpr})
	dst := &closeRecorder{}
	w, err := cr.Encrypt(dst)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "abc")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := dst.Len()
	if err := w.Close(); err != nil { // a second Close must not append another MDC
		t.Fatal(err)
	}
	if dst.closed || dst.Len() != n {
		t.Fatalf("Close closed the destination (%v) or wrote again (%d -> %d bytes)", dst.closed, n, dst.Len())
	}
	if _, err := w.Write([]byte("late")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if got := gpgDecrypt(t, bytes.NewReader(dst.Bytes())); string(got) != "abc" {
		t.Fatalf("gpg -d = %q", got)
	}
}

type closeRecorder struct {
	bytes.Buffer
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestMessageForAnotherKeyFailsNamingItsKeyID(t *testing.T) {
	useKeyring(t)
	for name, c := range map[string]config.GPG{
		"gpg program":     {KeyID: fx.main.email},
		"secret key file": {KeyID: fx.main.email, SecretKeyPath: fx.mainSec},
	} {
		t.Run(name, func(t *testing.T) {
			cr := newCrypter(t, c)
			out, err := decryptAll(cr, fx.msgOther)
			if err == nil {
				t.Fatalf("decrypting a message for another key succeeded (%d bytes)", len(out))
			}
			if len(out) != 0 {
				t.Fatalf("got %d plaintext bytes with the error", len(out))
			}
			if !strings.Contains(err.Error(), "0x"+fx.other.encID) {
				t.Fatalf("error %q does not name the message's key 0x%s", err, fx.other.encID)
			}
			if name == "gpg program" && !strings.Contains(err.Error(), "No secret key") {
				t.Fatalf("error %q lacks gpg's own diagnosis", err)
			}
		})
	}
}

func TestTamperedOrTruncatedCiphertextIsAnError(t *testing.T) {
	useKeyring(t)
	tampered := bytes.Clone(fx.msgMain)
	tampered[len(tampered)/2] ^= 0x01 // inside the SEIPD body: only the MDC can tell
	truncated := fx.msgMain[:len(fx.msgMain)-30]
	for name, c := range map[string]config.GPG{
		"gpg program":     {KeyID: fx.main.email},
		"secret key file": {KeyID: fx.main.email, SecretKeyPath: fx.mainSec},
	} {
		cr := newCrypter(t, c)
		for what, msg := range map[string][]byte{"tampered": tampered, "truncated": truncated} {
			if _, err := decryptAll(cr, msg); err == nil {
				t.Errorf("%s, %s message: no error", name, what)
			} else {
				t.Logf("%s, %s: %v", name, what, err)
			}
		}
	}
}

func TestGpgFailureIncludesStderr(t *testing.T) {
	useKeyring(t)
	cr := newCrypter(t, config.GPG{KeyID: fx.main.email})
	tampered := bytes.Clone(fx.msgMain)
	tampered[len(tampered)-5] ^= 0xFF // inside the MDC
	_, err := decryptAll(cr, tampered)
	if err == nil || !strings.Contains(err.Error(), "gpg -d failed") || !strings.Contains(err.Error(), "gpg: ") {
		t.Fatalf("error %v should report gpg's exit and its stderr", err)
	}
}

func TestWrongPassphraseIsReportedWithoutLeakingIt(t *testing.T) {
	emptyHome(t)
	const wrong = "hunter2-this-is-not-it"
	pass := writeFile(t, "pass", []byte(wrong+"\n"), 0o600)
	cr, err := New(config.GPG{Enabled: true, KeyID: fx.prot.email, SecretKeyPath: fx.protSec, PassphrasePath: pass})
	if err == nil {
		t.Fatalf("New with a wrong passphrase succeeded (%s)", cr.Fingerprint())
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks the passphrase: %v", err)
	}
	if !strings.Contains(err.Error(), "WALDEN_GPG_PASSPHRASE_PATH") {
		t.Fatalf("error %q does not point at WALDEN_GPG_PASSPHRASE_PATH", err)
	}
}

func TestPassphraseFileHandling(t *testing.T) {
	emptyHome(t)
	t.Run("world-readable file is refused", func(t *testing.T) {
		pass := writeFile(t, "pass", []byte(protPassphrase+"\n"), 0o644)
		_, err := New(config.GPG{Enabled: true, KeyID: fx.prot.email, SecretKeyPath: fx.protSec, PassphrasePath: pass})
		if err == nil || !strings.Contains(err.Error(), "WALDEN_GPG_PASSPHRASE_PATH") || !strings.Contains(err.Error(), "world-readable") {
			t.Fatalf("err = %v, want a world-readable error naming WALDEN_GPG_PASSPHRASE_PATH", err)
		}
		if strings.Contains(err.Error(), protPassphrase) {
			t.Fatal("error leaks the passphrase")
		}
	})
	t.Run("world-readable file is refused even for an unprotected key", func(t *testing.T) {
		pass := writeFile(t, "pass", []byte("unused\n"), 0o604)
		_, err := New(config.GPG{Enabled: true, KeyID: fx.main.email, SecretKeyPath: fx.mainSec, PassphrasePath: pass})
		if err == nil || !strings.Contains(err.Error(), "WALDEN_GPG_PASSPHRASE_PATH") {
			t.Fatalf("err = %v, want one naming WALDEN_GPG_PASSPHRASE_PATH", err)
		}
	})
	t.Run("protected key without passphrase file is refused", func(t *testing.T) {
		_, err := New(config.GPG{Enabled: true, KeyID: fx.prot.email, SecretKeyPath: fx.protSec})
		if err == nil || !strings.Contains(err.Error(), "WALDEN_GPG_PASSPHRASE_PATH") {
			t.Fatalf("err = %v, want one naming WALDEN_GPG_PASSPHRASE_PATH", err)
		}
	})
	t.Run("only the first line counts, CRLF tolerated", func(t *testing.T) {
		pass := writeFile(t, "pass", []byte(protPassphrase+"\r\nsecond line\n"), 0o600)
		cr := newCrypter(t, config.GPG{KeyID: fx.prot.email, SecretKeyPath: fx.protSec, PassphrasePath: pass})
		mustDecrypt(t, cr, fx.msgProt, fx.plain)
	})
	t.Run("public key as secret key file is refused", func(t *testing.T) {
		_, err := New(config.GPG{Enabled: true, KeyID: fx.main.email, SecretKeyPath: fx.mainPub})
		if err == nil || !strings.Contains(err.Error(), "WALDEN_GPG_SECRET_KEY_PATH") {
			t.Fatalf("err = %v, want one naming WALDEN_GPG_SECRET_KEY_PATH", err)
		}
	})
}

func TestNotEncryptedInputIsRejected(t *testing.T) {
	useKeyring(t)
	cr := newCrypter(t, config.GPG{KeyID: fx.main.email, SecretKeyPath: fx.mainSec})
	for _, in := range [][]byte{nil, []byte("\x89LZO\x00\r\n\x1a\n plain lzop"), []byte("plain text")} {
		for _, c := range []*Crypter{cr, nil} {
			if _, err := c.Decrypt(bytes.NewReader(in)); err == nil {
				t.Errorf("Decrypt(%q) succeeded", in)
			}
		}
	}
}

// blockingReader serves data, then blocks until released, like a stalled
// network stream; parked is closed when it starts blocking.
type blockingReader struct {
	data    []byte
	parked  chan struct{}
	release chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		close(b.parked)
		<-b.release
		return 0, io.EOF
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func TestClosingEarlyKillsAndReapsGpg(t *testing.T) {
	useKeyring(t)
	cr := newCrypter(t, config.GPG{KeyID: fx.main.email})
	msg := encryptAll(t, cr, randomBytes(3, 8<<20))

	t.Run("after reading some plaintext", func(t *testing.T) {
		rc, err := cr.Decrypt(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		assertReapedOnClose(t, rc)
	})
	t.Run("while the source is stalled", func(t *testing.T) {
		// gpg swallows this much at once, so the goroutine feeding it
		// is parked in a Read of the source when Close comes.
		src := &blockingReader{data: msg[:20<<10], parked: make(chan struct{}), release: make(chan struct{})}
		defer close(src.release)
		rc, err := cr.Decrypt(src)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-src.parked:
		case <-time.After(10 * time.Second):
			t.Fatal("source never drained")
		}
		assertReapedOnClose(t, rc)
	})
}

func assertReapedOnClose(t *testing.T, rc io.ReadCloser) {
	t.Helper()
	pr, ok := rc.(*programReader)
	if !ok {
		t.Fatalf("Decrypt returned %T, want the gpg program reader", rc)
	}
	start := time.Now()
	if err := rc.Close(); err != nil {
		t.Fatalf("Close after an early stop: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	if pr.cmd.ProcessState == nil {
		t.Fatal("gpg was not reaped")
	}
	// The pid no longer exists (reaped, not a zombie).
	if err := syscall.Kill(pr.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill -0 on gpg's pid after Close: %v, want ESRCH", err)
	}
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}

func TestIsEncryptedRecognisesGpgOutputAndNotCompressionMagic(t *testing.T) {
	useKeyring(t)
	cr := newCrypter(t, config.GPG{KeyID: fx.main.email})
	for name, msg := range map[string][]byte{
		"gpg -e (ECDH)": fx.msgMain,
		"gpg -e (RSA)":  fx.msgRSA,
		"walden":        encryptAll(t, cr, []byte("x")),
	} {
		if !IsEncrypted(msg[:16]) {
			t.Errorf("IsEncrypted(%s prefix % x) = false", name, msg[:16])
		}
	}
	for _, tc := range []struct {
		name   string
		prefix []byte
		want   bool
	}{
		{"lzop", []byte{0x89, 0x4C, 0x5A, 0x4F, 0x00, 0x0D, 0x0A, 0x1A}, false},
		{"lz4", []byte{0x04, 0x22, 0x4D, 0x18}, false},
		{"zstd", []byte{0x28, 0xB5, 0x2F, 0xFD}, false},
		{"empty", nil, false},
		{"tar", []byte("base/1/1234\x00\x00"), false},
		{"PostgreSQL 9.5 WAL page (magic D087)", []byte{0x87, 0xD0, 0x05, 0x00}, false},
		{"old format, 1-byte length, v3", []byte{0x84, 0x5E, 0x03}, true},
		{"old format, 2-byte length, v3", []byte{0x85, 0x01, 0x0C, 0x03}, true},
		{"old format, bad version", []byte{0x85, 0x01, 0x0C, 0x07}, false},
		{"new format tag 1, v3", []byte{0xC1, 0x5E, 0x03}, true},
		{"new format tag 1, 2-byte length", []byte{0xC1, 0xC0, 0x10, 0x03}, true},
		{"new format tag 18 (SEIPD alone)", []byte{0xD2, 0x10, 0x01}, false},
		{"old format tag 3 (symmetric key)", []byte{0x8C, 0x0D, 0x04}, false},
		{"tag byte only", []byte{0x85}, true},
	} {
		if got := IsEncrypted(tc.prefix); got != tc.want {
			t.Errorf("IsEncrypted(%s % x) = %v, want %v", tc.name, tc.prefix, got, tc.want)
		}
	}
}

func TestCanDecryptIsFalseWithoutTheSecretKey(t *testing.T) {
	// The keyring has the public key of "other" only.
	home := useKeyring(t)
	if _, err := runGPG(home, nil, "--batch", "--import", fx.otherPub); err != nil {
		t.Fatal(err)
	}
	cr := newCrypter(t, config.GPG{KeyID: fx.other.email})
	if cr.CanDecrypt() {
		t.Fatal("CanDecrypt = true without the secret key")
	}
	if mine := newCrypter(t, config.GPG{KeyID: fx.main.email}); !mine.CanDecrypt() {
		t.Fatal("CanDecrypt = false with the secret key in the keyring")
	}
}

func TestMissingGpgProgramIsAClearError(t *testing.T) {
	useKeyring(t)
	t.Setenv("PATH", t.TempDir())
	if _, err := New(config.GPG{Enabled: true, KeyID: fx.main.email}); err == nil || !strings.Contains(err.Error(), "gpg program not found") {
		t.Fatalf("New without gpg: %v", err)
	}
	var nilCrypter *Crypter
	if _, err := nilCrypter.Decrypt(bytes.NewReader(fx.msgMain)); err == nil || !errors.Is(err, exec.ErrNotFound) && !strings.Contains(err.Error(), "not found") {
		t.Fatalf("Decrypt without gpg: %v", err)
	}
}
