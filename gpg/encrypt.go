package gpg

import (
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// encryptConfig mirrors `gpg -e -z 0`: no compression packet and SEIPD v1
// with MDC (AEADConfig stays nil, so go-crypto never writes SEIPD v2, which
// GnuPG 2.2 cannot read). AES-256 is what gpg picks from the preference
// list of every key it generates; go-crypto still falls back to a cipher
// the key advertises.
func encryptConfig() *packet.Config {
	return &packet.Config{
		DefaultCipher:          packet.CipherAES256,
		DefaultCompressionAlgo: packet.CompressionNone,
	}
}

// Encrypt returns a writer whose plaintext is encrypted to the configured
// key and written to w as a binary OpenPGP message. Close writes the final
// packet (with the MDC) but does not close w; a message without Close is
// truncated and will fail to decrypt.
func (c *Crypter) Encrypt(w io.Writer) (io.WriteCloser, error) {
	if c == nil || c.recipient == nil {
		return nil, errors.New("gpg: encryption is not configured")
	}
	hints := &openpgp.FileHints{IsBinary: true} // literal mode 'b', empty file name
	pt, err := openpgp.Encrypt(w, []*openpgp.Entity{c.recipient}, nil, hints, encryptConfig())
	if err != nil {
		return nil, fmt.Errorf("gpg key %s cannot be used for encryption: %v", c.name(), err)
	}
	return &encWriter{w: pt}, nil
}

func (c *Crypter) name() string {
	if c.keyID != "" {
		return c.keyID
	}
	return c.fingerprint
}

// encWriter makes Close idempotent (a second Close on go-crypto's writer
// would append a second MDC and corrupt the message) and refuses writes
// after Close.
type encWriter struct {
	w      io.WriteCloser
	closed bool
}

func (e *encWriter) Write(p []byte) (int, error) {
	if e.closed {
		return 0, errors.New("gpg: write after Close")
	}
	return e.w.Write(p)
}

func (e *encWriter) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	if err := e.w.Close(); err != nil {
		return fmt.Errorf("gpg: finishing encrypted message: %w", err)
	}
	return nil
}
