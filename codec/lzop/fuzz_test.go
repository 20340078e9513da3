package lzop

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzReader feeds arbitrary bytes to NewReader: it must never panic, must
// not produce more output than LZO1X can encode in the input, and must
// report every failure as an "lzop: " error wrapping ErrCorrupt. The seed
// corpus in testdata/fuzz/FuzzReader holds small streams written by the real
// lzop; hand-built variants below add the header and block features lzop's
// command line does not produce.
func FuzzReader(f *testing.F) {
	blocks := [][]byte{[]byte("hello hello hello hello, world"), textBytes(200), {0}, make([]byte, 300)}
	for _, spec := range []streamSpec{
		{flags: fAdler32D | fAdler32C | fCRC32D | fCRC32C},
		{flags: fAdler32D | fHExtraField | fHCRC32, extra: []byte("extra")},
		{flags: fCRC32D, filter: 2},
		{version: 0x0930, flags: fAdler32D},
		{flags: fAdler32D | fAdler32C, store: true},
	} {
		spec.blocks = blocks
		f.Add(buildStream(spec))
	}
	f.Add(compress(f, textBytes(1000), 1<<20))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := io.Copy(io.Discard, NewReader(bytes.NewReader(data)))
		if n > int64(len(data))*maxExpansion {
			t.Fatalf("%d input bytes produced %d output bytes", len(data), n)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %q does not wrap ErrCorrupt", err)
			}
			if !strings.HasPrefix(err.Error(), "lzop: ") {
				t.Fatalf("error %q does not start with \"lzop: \"", err)
			}
		}
	})
}

// FuzzLZO1XDecompress drives the block decoder directly, where mutations are
// not stopped by the container's checksums.
func FuzzLZO1XDecompress(f *testing.F) {
	var c compressor
	for _, src := range [][]byte{textBytes(500), mixedBytes()[:3000], make([]byte, 1000), []byte("abcabcabcabcabc")} {
		enc := make([]byte, maxCompressedLen(len(src)))
		f.Add(enc[:c.compress(enc, src)], uint16(len(src)))
	}
	f.Add([]byte{0x15, 'a', 'b', 'c', 'd', 0x4d, 0x00, 'x', 0x04, 0x00, 0x11, 0, 0}, uint16(10))
	f.Fuzz(func(t *testing.T, src []byte, outLen uint16) {
		dst := make([]byte, outLen)
		if err := lzo1xDecompress(dst, src); err == nil && len(src) == 0 {
			t.Fatal("empty input accepted")
		}
	})
}

// FuzzRoundTrip checks that whatever the writer produces decodes to its
// input, both with this package's reader and through the block codec.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello hello hello hello"))
	f.Add(textBytes(3000))
	f.Add(mixedBytes()[:5000])
	f.Add(make([]byte, 5000))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decompress(compress(t, data, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("round trip differs")
		}
	})
}

// TestFuzzReaderSeedsAreValidLzopStreams keeps the lzop-written seeds
// meaningful: each must decode, and to what lzop itself decodes.
func TestFuzzReaderSeedsAreValidLzopStreams(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzReader/lzop-*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no lzop seeds found: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" ||
			!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("%s: not a one-value corpus file", f)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		stream := []byte(s)
		got, err := decompress(stream)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if want := runLzop(t, stream, "-dc"); !bytes.Equal(got, want) {
			t.Fatalf("%s: decodes differently from lzop -dc", f)
		}
	}
}
