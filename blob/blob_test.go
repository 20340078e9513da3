package blob

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/walden-pg/walden/codec"
)

// pgpCrypter is a minimal in-memory OpenPGP crypter, enough to pin the
// pipeline's order and its integrity check.
type pgpCrypter struct{ e *openpgp.Entity }

func (p pgpCrypter) Encrypt(w io.Writer) (io.WriteCloser, error) {
	return openpgp.Encrypt(w, []*openpgp.Entity{p.e}, nil, &openpgp.FileHints{IsBinary: true}, nil)
}

func (p pgpCrypter) Decrypt(r io.Reader) (io.ReadCloser, error) {
	md, err := openpgp.ReadMessage(r, openpgp.EntityList{p.e}, nil, nil)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(md.UnverifiedBody), nil
}

func newCrypter(t *testing.T) pgpCrypter {
	e, err := openpgp.NewEntity("blob test", "", "blob@walden.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	return pgpCrypter{e}
}

func encode(t *testing.T, f Format, data []byte) []byte {
	var buf bytes.Buffer
	w, err := f.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decode(key string, obj []byte, c Crypter) ([]byte, error) {
	r, err := NewReader(key, bytes.NewReader(obj), c)
	if err != nil {
		return nil, err
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return got, err
}

func TestRoundTripEveryCodecPlainAndEncrypted(t *testing.T) {
	data := bytes.Repeat([]byte("walden blob "), 100000)
	cr := newCrypter(t)
	for _, c := range codec.All {
		for _, enc := range []bool{false, true} {
			f := Format{Codec: c}
			if enc {
				f.Crypt = cr
			}
			obj := encode(t, f, data)
			if enc && bytes.Contains(obj, []byte("walden blob")) {
				t.Fatalf("%s: plaintext visible", c.Name())
			}
			got, err := decode("wal_005/x"+c.Ext(), obj, cr)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s enc=%v: %v", c.Name(), enc, err)
			}
		}
	}
}

func TestEncryptedObjectWithoutKeyGoesToTheKeyringAndFailsWithoutTheSecretKey(t *testing.T) {
	t.Setenv("GNUPGHOME", t.TempDir()) // an empty keyring
	lz4, _ := codec.ByName("lz4")
	obj := encode(t, Format{Codec: lz4, Crypt: newCrypter(t)}, []byte("secret"))
	got, err := decode("wal_005/x.lz4", obj, nil)
	if err == nil || !strings.Contains(err.Error(), "gpg") {
		t.Fatalf("decoded %q, err = %v; want a gpg decryption error", got, err)
	}
}

func TestTamperedCiphertextFailsEvenWhenTheCodecStopsEarly(t *testing.T) {
	lzo, _ := codec.ByName("lzo")
	cr := newCrypter(t)
	obj := encode(t, Format{Codec: lzo, Crypt: cr}, bytes.Repeat([]byte{1}, 1000))
	obj[len(obj)-5] ^= 0xff // inside the MDC, after the lzop end marker
	if _, err := decode("wal_005/x.lzo", obj, cr); err == nil {
		t.Fatal("tampered object decoded without error")
	}
}
