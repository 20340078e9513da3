package lzop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/adler32"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// mustFailCorrupt decodes stream and requires an error that wraps ErrCorrupt
// and reads "lzop: ...".
func mustFailCorrupt(t *testing.T, stream []byte, contains string) error {
	t.Helper()
	_, err := decompress(stream)
	if err == nil {
		t.Fatal("corrupt stream decoded without error")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %q does not wrap ErrCorrupt", err)
	}
	if !strings.HasPrefix(err.Error(), "lzop: ") {
		t.Fatalf("error %q does not start with \"lzop: \"", err)
	}
	if contains != "" && !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not mention %q", err, contains)
	}
	return err
}

// fixHeaderSum recomputes the Adler-32 header checksum after a test edits
// header fields, so the edit itself is what the reader sees.
func fixHeaderSum(t *testing.T, s []byte) {
	n := headerLen(t, s)
	binary.BigEndian.PutUint32(s[n-4:], adler32.Checksum(s[len(magic):n-4]))
}

func smallStream(t *testing.T) []byte {
	return buildStream(streamSpec{
		flags:  fAdler32D | fAdler32C | fCRC32D,
		blocks: [][]byte{textBytes(3000), randomBytes(300, 1), bytes.Repeat([]byte{7}, 500)},
	})
}

func TestReaderRejectsBadMagic(t *testing.T) {
	s := compress(t, []byte("data"), 100)
	for i := range magic {
		c := bytes.Clone(s)
		c[i] ^= 0x20
		mustFailCorrupt(t, c, "bad magic")
	}
	mustFailCorrupt(t, []byte("\x1f\x8b\x08\x00 this is gzip, not lzop"), "bad magic")
}

func TestReaderRejectsHeaderByteFlips(t *testing.T) {
	s := compress(t, textBytes(5000), 1<<20)
	n := headerLen(t, s)
	for i := len(magic); i < n; i++ {
		for _, bit := range []byte{0x01, 0x80} {
			c := bytes.Clone(s)
			c[i] ^= bit
			err := mustFailCorrupt(t, c, "")
			if !strings.Contains(err.Error(), "checksum") && !errors.Is(err, io.ErrUnexpectedEOF) &&
				!strings.Contains(err.Error(), "version") {
				t.Errorf("byte %d bit %#x: unexpected error %v", i, bit, err)
			}
		}
	}
}

// TestReaderRejectsEverySingleByteFlip pins that no byte of a stream is
// unprotected: each flip is caught by a check, a checksum or truncation.
func TestReaderRejectsEverySingleByteFlip(t *testing.T) {
	s := smallStream(t)
	for i := range s {
		c := bytes.Clone(s)
		c[i] ^= 0x55
		mustFailCorrupt(t, c, "")
	}
}

func TestReaderRejectsBlockChecksumMismatch(t *testing.T) {
	data := textBytes(20000)
	cases := []struct {
		name  string
		spec  streamSpec
		field int // offset of the checksum within the block header
		want  string
	}{
		{"adler32 of data", streamSpec{flags: fAdler32D}, 8, "Adler-32 mismatch"},
		{"crc32 of data", streamSpec{flags: fCRC32D}, 8, "CRC-32 mismatch"},
		{"adler32 of compressed", streamSpec{flags: fAdler32C}, 8, "compressed data Adler-32"},
		{"crc32 of compressed", streamSpec{flags: fAdler32D | fCRC32C}, 12, "compressed data CRC-32"},
		{"adler32 of stored data", streamSpec{flags: fAdler32D, store: true}, 8, "Adler-32 mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.blocks = [][]byte{data}
			s := buildStream(tc.spec)
			p := headerLen(t, s) + tc.field
			s[p+2] ^= 1
			mustFailCorrupt(t, s, tc.want)
		})
	}
	t.Run("data byte changed", func(t *testing.T) {
		s := compress(t, data, 1<<20)
		s[len(s)-20] ^= 0x10
		mustFailCorrupt(t, s, "")
	})
}

func TestReaderRejectsTruncatedStreamAtEveryOffset(t *testing.T) {
	s := smallStream(t)
	for n := 0; n < len(s); n++ {
		_, err := decompress(s[:n])
		if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d of %d: got %v, want ErrUnexpectedEOF and ErrCorrupt", n, len(s), err)
		}
	}
}

func TestReaderRejectsMissingEndMarker(t *testing.T) {
	s := compress(t, walLike(3*blockSize, 5), 1<<30)
	r := NewReader(bytes.NewReader(s[:len(s)-4]))
	n, err := io.Copy(io.Discard, r)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v after %d bytes, want io.ErrUnexpectedEOF", err, n)
	}
	if n != 3*blockSize {
		t.Fatalf("delivered %d bytes before the error, want the %d intact bytes", n, 3*blockSize)
	}
}

// blockHeaderAt returns the offset of the first block header.
func editFirstBlock(t *testing.T, s []byte, edit func(b []byte)) []byte {
	c := bytes.Clone(s)
	edit(c[headerLen(t, c):])
	return c
}

func TestReaderRejectsImpossibleBlockLengths(t *testing.T) {
	s := compress(t, textBytes(50000), 1<<20)
	cases := []struct {
		name string
		edit func(b []byte)
		want string
	}{
		{"uncompressed over 64MiB", func(b []byte) { binary.BigEndian.PutUint32(b, maxBlockSize+1) }, "exceeds"},
		{"compressed zero", func(b []byte) { binary.BigEndian.PutUint32(b[4:], 0) }, "compressed length"},
		{"compressed longer than uncompressed", func(b []byte) {
			binary.BigEndian.PutUint32(b[4:], binary.BigEndian.Uint32(b)+1)
		}, "compressed length"},
		{"expansion beyond LZO1X's limit", func(b []byte) {
			binary.BigEndian.PutUint32(b, 60<<20)
			binary.BigEndian.PutUint32(b[4:], 100)
		}, "cannot decode"},
		{"uncompressed length too long", func(b []byte) {
			binary.BigEndian.PutUint32(b, binary.BigEndian.Uint32(b)+1)
		}, "fewer bytes"},
		{"uncompressed length too short", func(b []byte) {
			binary.BigEndian.PutUint32(b, binary.BigEndian.Uint32(b)-1)
		}, "output overrun"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mustFailCorrupt(t, editFirstBlock(t, s, tc.edit), tc.want)
		})
	}
}

func TestReaderRejectsUnsupportedMethod(t *testing.T) {
	for _, m := range []byte{0, 4, 0x1a, 128} {
		s := compress(t, []byte("data"), 10)
		s[15] = m
		fixHeaderSum(t, s)
		mustFailCorrupt(t, s, "method")
	}
}

func TestReaderRejectsUnsupportedFilter(t *testing.T) {
	s := buildStream(streamSpec{flags: fAdler32D, filter: 17, blocks: [][]byte{[]byte("abc")}})
	mustFailCorrupt(t, s, "unsupported filter 17")
}

func TestReaderRejectsReservedAndMultipartFlags(t *testing.T) {
	for _, f := range []uint32{0x4000, 0x80000, fMultipart} {
		s := buildStream(streamSpec{flags: fAdler32D | f, blocks: [][]byte{[]byte("abc")}})
		mustFailCorrupt(t, s, "")
	}
}

func TestReaderRejectsNewerVersionNeeded(t *testing.T) {
	s := compress(t, []byte("data"), 10)
	binary.BigEndian.PutUint16(s[13:], 0x2000)
	fixHeaderSum(t, s)
	mustFailCorrupt(t, s, "needs lzop version")
}

func TestReaderRejectsExtraFieldChecksumMismatch(t *testing.T) {
	s := buildStream(streamSpec{flags: fAdler32D | fHExtraField, extra: []byte("xyz"), blocks: [][]byte{[]byte("abc")}})
	s[headerLen(t, s)+5] ^= 1
	mustFailCorrupt(t, s, "extra field checksum")
}

// TestReaderRejectsUndecodableLZO1XData feeds garbage as compressed block
// data with correct checksums, so only the LZO1X decoder can object.
func TestReaderRejectsUndecodableLZO1XData(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		garbage := make([]byte, 1+rng.IntN(64))
		for j := range garbage {
			garbage[j] = byte(rng.Uint32())
		}
		var s []byte
		s = append(s, compress(t, nil, 1)...)
		s = s[:len(s)-4]
		ulen := len(garbage) + 1 + rng.IntN(1000)
		s = binary.BigEndian.AppendUint32(s, uint32(ulen))
		s = binary.BigEndian.AppendUint32(s, uint32(len(garbage)))
		s = binary.BigEndian.AppendUint32(s, 1) // Adler-32 of nothing useful
		s = append(s, garbage...)
		s = binary.BigEndian.AppendUint32(s, 0)
		if _, err := decompress(s); err == nil || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("garbage %x: got %v, want an ErrCorrupt error", garbage, err)
		}
	}
}

func TestReaderSurvivesRandomCorruption(t *testing.T) {
	base := compress(t, mixedBytes()[:300000], 1<<30)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 300; i++ {
		c := bytes.Clone(base)
		for k := 1 + rng.IntN(4); k > 0; k-- {
			c[rng.IntN(len(c))] ^= byte(1 + rng.IntN(255))
		}
		if rng.IntN(3) == 0 {
			c = c[:rng.IntN(len(c))]
		}
		if _, err := decompress(c); err == nil {
			t.Fatalf("iteration %d: corrupted stream decoded without error", i)
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReaderPassesThroughUnderlyingReadErrors(t *testing.T) {
	_, err := io.ReadAll(NewReader(errReader{io.ErrClosedPipe}))
	if !errors.Is(err, io.ErrClosedPipe) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want the underlying error and not ErrCorrupt", err)
	}
}
