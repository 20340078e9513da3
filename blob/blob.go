// Package blob turns plain streams into stored objects and back:
// compress, then encrypt when a key is configured (WAL-E's order), and on
// read decrypt and decompress by the object's extension.
package blob

import (
	"bufio"
	"fmt"
	"io"

	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/gpg"
)

// Crypter is the encryption half; *gpg.Crypter implements it.
type Crypter interface {
	Encrypt(w io.Writer) (io.WriteCloser, error)
	Decrypt(r io.Reader) (io.ReadCloser, error)
}

// Format is how new objects are written.
type Format struct {
	Codec codec.Codec
	Crypt Crypter // nil: plaintext
}

// Ext is the suffix appended to object names (encryption adds none, as WAL-E).
func (f Format) Ext() string { return f.Codec.Ext() }

// NewWriter returns a writer whose bytes become the object's content in w.
// Close flushes compression and encryption but does not close w.
func (f Format) NewWriter(w io.Writer) (io.WriteCloser, error) {
	if f.Crypt == nil {
		return f.Codec.NewWriter(w)
	}
	ew, err := f.Crypt.Encrypt(w)
	if err != nil {
		return nil, err
	}
	cw, err := f.Codec.NewWriter(ew)
	if err != nil {
		ew.Close()
		return nil, err
	}
	return &chain{cw, ew}, nil
}

type chain struct{ outer, inner io.WriteCloser }

func (c *chain) Write(p []byte) (int, error) { return c.outer.Write(p) }
func (c *chain) Close() error {
	err := c.outer.Close()
	if err2 := c.inner.Close(); err == nil {
		err = err2
	}
	return err
}

// keyring decrypts through the gpg program with the user's keyring: the
// nil *gpg.Crypter does exactly that.
var keyring Crypter = (*gpg.Crypter)(nil)

// NewReader decodes the content of the object named key read from r.
// Encryption is detected from the first bytes, so archives that mix
// encrypted and plain objects (a key added later) read back; with no
// crypt, encrypted objects are decrypted with the GnuPG keyring.
func NewReader(key string, r io.Reader, crypt Crypter) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(8)
	var src io.Reader = br
	var dec io.ReadCloser
	if gpg.IsEncrypted(head) {
		if crypt == nil {
			// As WAL-E's `gpg -d`: whatever secret key the keyring holds.
			crypt = keyring
		}
		d, err := crypt.Decrypt(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		dec, src = d, d
	}
	cr, err := codec.ByKey(key).NewReader(src)
	if err != nil {
		if dec != nil {
			dec.Close()
		}
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return &readChain{cr, dec}, nil
}

type readChain struct {
	r   io.ReadCloser
	dec io.ReadCloser
}

func (c *readChain) Read(p []byte) (int, error) { return c.r.Read(p) }

// Close verifies what only the end of the stream can prove: OpenPGP's
// integrity check (MDC) is read after the last compressed byte, which a
// decompressor that stops at its end marker never asks for. Callers must
// check Close's error before trusting the data.
func (c *readChain) Close() error {
	err := c.r.Close()
	if c.dec != nil {
		// Drain a bounded tail; an abandoned stream is not worth reading whole.
		if _, derr := io.Copy(io.Discard, io.LimitReader(c.dec, 1<<20)); derr != nil && err == nil {
			err = derr
		}
		if err2 := c.dec.Close(); err == nil {
			err = err2
		}
	}
	return err
}
