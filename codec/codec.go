// Package codec holds the compression formats walden reads and writes. The
// format of a stored object is chosen by its file name extension.
package codec

import (
	"fmt"
	"io"
	"strings"
)

// Codec compresses and decompresses one stream format.
type Codec interface {
	// Name is the WALDEN_COMPRESSION value ("lz4", "zstd", "lzo", "none").
	Name() string
	// Ext is the object name suffix including the dot ("" for none).
	Ext() string
	// NewWriter returns a writer compressing into w; Close flushes the trailer but does not close w.
	NewWriter(w io.Writer) (io.WriteCloser, error)
	// NewReader returns a reader decompressing r; corrupt or truncated input is an error, never silent.
	NewReader(r io.Reader) (io.ReadCloser, error)
}

// All lists every codec, in the order wal-fetch probes extensions: the
// default first, WAL-E's lzo second, the rest after.
var All = []Codec{LZ4{}, LZO{}, Zstd{}, None{}}

// ByName returns the codec for a WALDEN_COMPRESSION value.
func ByName(name string) (Codec, error) {
	for _, c := range All {
		if c.Name() == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("unknown compression %q (want lz4, zstd, lzo or none)", name)
}

// ByKey picks the codec from an object key's extension; keys without a known
// extension are uncompressed.
func ByKey(key string) Codec {
	for _, c := range All {
		if c.Ext() != "" && strings.HasSuffix(key, c.Ext()) {
			return c
		}
	}
	return None{}
}
