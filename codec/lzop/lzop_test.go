package lzop

import (
	"bytes"
	"encoding/binary"
	"hash/adler32"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func roundTripInputs() map[string][]byte {
	return map[string][]byte{
		"empty":           {},
		"one byte":        {'x'},
		"three bytes":     []byte("abc"),
		"short text":      []byte("hello hello hello hello hello\n"),
		"zeros 16MiB":     make([]byte, 16<<20),
		"random 1MiB":     randomBytes(1<<20, 1),
		"text 700KiB":     textBytes(700 << 10),
		"block-1":         textBytes(blockSize - 1),
		"block":           walLike(blockSize, 2),
		"block+1":         walLike(blockSize+1, 3),
		"two blocks":      walLike(2*blockSize, 4),
		"two blocks+13":   randomBytes(2*blockSize+13, 5),
		"wal-like 16MiB":  walLike(16<<20, 6),
		"mixed":           mixedBytes(),
		"period 3 repeat": bytes.Repeat([]byte("xyz"), 100000),
	}
}

func TestRoundTripPreservesBytes(t *testing.T) {
	for name, data := range roundTripInputs() {
		t.Run(name, func(t *testing.T) {
			for _, chunk := range []int{1 << 30, 7777} {
				if chunk < 1<<30 && len(data) > 4<<20 {
					continue
				}
				got, err := decompress(compress(t, data, chunk))
				if err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("chunk %d: round trip differs (got %d bytes, want %d)", chunk, len(got), len(data))
				}
			}
		})
	}
}

func TestRoundTripWithByteSizedWrites(t *testing.T) {
	data := walLike(blockSize+500, 11)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for i := range data {
		if _, err := w.Write(data[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := decompress(buf.Bytes())
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("round trip failed: %v", err)
	}
}

func TestWriterHeaderMatchesLzopPipeHeader(t *testing.T) {
	ours := compress(t, []byte("hello"), 1<<20)
	theirs := runLzop(t, []byte("hello"), "-c")
	n := headerLen(t, theirs)
	if got := headerLen(t, ours); got != n {
		t.Fatalf("header length %d, lzop's is %d", got, n)
	}
	// Everything but mtime (bytes 25..33) and the checksum must be equal.
	const mtimeOff = 25
	if !bytes.Equal(ours[:mtimeOff], theirs[:mtimeOff]) || !bytes.Equal(ours[mtimeOff+8:n-4], theirs[mtimeOff+8:n-4]) {
		t.Fatalf("header differs from lzop -c:\n ours %x\nlzop %x", ours[:n], theirs[:n])
	}
	if got, want := binary.BigEndian.Uint32(ours[n-4:]), adler32.Checksum(ours[len(magic):n-4]); got != want {
		t.Fatalf("header checksum %#x, want %#x", got, want)
	}
	mtime := int64(binary.BigEndian.Uint32(ours[mtimeOff:])) | int64(binary.BigEndian.Uint32(ours[mtimeOff+4:]))<<32
	if d := time.Since(time.Unix(mtime, 0)); d < -time.Minute || d > time.Minute {
		t.Fatalf("mtime %d is not the current time", mtime)
	}
}

func TestWriterOutputOfEmptyInputIsHeaderAndEndMarker(t *testing.T) {
	ours := compress(t, nil, 1)
	theirs := runLzop(t, nil, "-c")
	if len(ours) != len(theirs) || !bytes.Equal(ours[len(ours)-4:], []byte{0, 0, 0, 0}) {
		t.Fatalf("empty stream %x, lzop writes %x", ours, theirs)
	}
}

func TestWriterOutputDecodesWithLzop(t *testing.T) {
	for name, data := range roundTripInputs() {
		if len(data) > 4<<20 && name != "wal-like 16MiB" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			stream := compress(t, data, 1<<30)
			got := runLzop(t, stream, "-dc")
			if !bytes.Equal(got, data) {
				t.Fatalf("lzop -dc output differs (got %d bytes, want %d)", len(got), len(data))
			}
		})
	}
}

// TestWriterCompressesWALLikeData pins that the compressor really
// compresses, comparably to lzop's own LZO1X-1.
func TestWriterCompressesWALLikeData(t *testing.T) {
	data := walLike(4<<20, 21)
	ours := len(compress(t, data, 1<<30))
	theirs := len(runLzop(t, data, "-c"))
	t.Logf("WAL-like 4 MiB: ours %d bytes (%.1f%%), lzop -3 %d bytes (%.1f%%)",
		ours, 100*float64(ours)/float64(len(data)), theirs, 100*float64(theirs)/float64(len(data)))
	if ours > len(data)/2 {
		t.Fatalf("compressed to %d of %d bytes: not compressing", ours, len(data))
	}
	if float64(ours) > 1.25*float64(theirs) {
		t.Fatalf("compressed to %d bytes, much worse than lzop's %d", ours, theirs)
	}
}

func TestWriterStoresIncompressibleBlocksRaw(t *testing.T) {
	data := randomBytes(3*blockSize, 8)
	stream := compress(t, data, 1<<30)
	p := headerLen(t, stream)
	for i := 0; i < 3; i++ {
		u := binary.BigEndian.Uint32(stream[p:])
		c := binary.BigEndian.Uint32(stream[p+4:])
		if u != blockSize || c != u {
			t.Fatalf("block %d: uncompressed %d, compressed %d; want a raw %d-byte block", i, u, c, blockSize)
		}
		if !bytes.Equal(stream[p+12:p+12+int(c)], data[i*blockSize:(i+1)*blockSize]) {
			t.Fatalf("block %d: stored data differs from input", i)
		}
		p += 12 + int(c)
	}
	if !bytes.Equal(stream[p:], []byte{0, 0, 0, 0}) {
		t.Fatalf("stream does not end with the end marker after 3 blocks")
	}
}

func TestWriterCloseDoesNotCloseUnderlyingWriterAndRejectsLaterWrites(t *testing.T) {
	var cw closeRecorder
	w := NewWriter(&cw)
	if _, err := w.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if cw.closed {
		t.Fatal("Close closed the underlying writer")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if got, err := decompress(cw.Bytes()); err != nil || string(got) != "data" {
		t.Fatalf("decoded %q, %v", got, err)
	}
}

type closeRecorder struct {
	bytes.Buffer
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, io.ErrClosedPipe
	}
	f.after--
	return len(p), nil
}

func TestWriterReportsUnderlyingWriteErrors(t *testing.T) {
	w := NewWriter(&failWriter{after: 1})
	_, err := w.Write(make([]byte, 3*blockSize))
	if err == nil {
		err = w.Close()
	}
	if err != io.ErrClosedPipe {
		t.Fatalf("got %v, want the underlying io.ErrClosedPipe", err)
	}
	if err := w.Close(); err != io.ErrClosedPipe {
		t.Fatalf("Close after failure: %v", err)
	}
}

func TestReaderDecodesRealLzopOutput(t *testing.T) {
	data := mixedBytes()
	cases := []struct {
		name   string
		args   []string
		method byte
	}{
		{"default LZO1X-1", []string{"-c"}, methodLZO1X1},
		{"-1 LZO1X-1(15)", []string{"-1", "-c"}, methodLZO1X115},
		{"-9 LZO1X-999", []string{"-9", "-c"}, methodLZO1X999},
		{"-7 LZO1X-999", []string{"-7", "-c"}, methodLZO1X999},
		{"crc32", []string{"--crc32", "-c"}, methodLZO1X1},
		{"crc32 -9", []string{"--crc32", "-9", "-c"}, methodLZO1X999},
		{"no checksum", []string{"--no-checksum", "-c"}, methodLZO1X1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := runLzop(t, data, tc.args...)
			if m := stream[15]; m != tc.method {
				t.Fatalf("lzop %v wrote method %d, test expects %d", tc.args, m, tc.method)
			}
			got, err := decompress(stream)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("decoded %d bytes differing from the %d input bytes", len(got), len(data))
			}
		})
	}
}

func TestReaderDecodesLzopOfNamedFile(t *testing.T) {
	data := walLike(600000, 31)
	path := filepath.Join(t.TempDir(), "000000010000000000000042")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	stream := runLzop(t, nil, "-c", path)
	flags := binary.BigEndian.Uint32(stream[17:])
	if flags&fStdin != 0 || stream[33] == 0 {
		t.Fatalf("lzop of a named file: flags %#x, name length %d; want F_STDIN off and a name", flags, stream[33])
	}
	got, err := decompress(stream)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("decoded data differs")
	}
}

// TestReaderUndoesLzopFilters covers lzop's --filter=N delta filters on
// compressed blocks, stored (incompressible) blocks and blocks shorter than
// the filter.
func TestReaderUndoesLzopFilters(t *testing.T) {
	inputs := map[string][]byte{
		"mixed":   mixedBytes()[:700000],
		"random":  randomBytes(blockSize+100, 12),
		"tiny":    []byte("ab"),
		"16bytes": []byte("0123456789abcdef"),
	}
	dir := t.TempDir()
	for _, f := range []string{"1", "2", "3", "4", "7", "16"} {
		for name, data := range inputs {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			stream := runLzop(t, nil, "-c", "--filter="+f, path)
			if flags := binary.BigEndian.Uint32(stream[17:]); flags&fHFilter == 0 {
				t.Fatalf("lzop --filter=%s did not set F_H_FILTER", f)
			}
			got, err := decompress(stream)
			if err != nil {
				t.Fatalf("filter %s, %s: %v", f, name, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("filter %s, %s: decoded data differs", f, name)
			}
		}
	}
}

func TestReaderDecodesHandBuiltVariants(t *testing.T) {
	blocks := [][]byte{walLike(100000, 41), randomBytes(5000, 42), textBytes(3000), []byte("z")}
	want := bytes.Join(blocks, nil)
	cases := map[string]streamSpec{
		"adler32 data and compressed":  {flags: fAdler32D | fAdler32C},
		"crc32 data and compressed":    {flags: fCRC32D | fCRC32C | fHCRC32},
		"all four checksums":           {flags: fAdler32D | fAdler32C | fCRC32D | fCRC32C},
		"no checksums":                 {},
		"extra field adler":            {flags: fAdler32D | fHExtraField, extra: []byte("extra bytes")},
		"extra field crc":              {flags: fAdler32D | fHExtraField | fHCRC32, extra: make([]byte, 9000)},
		"empty extra field":            {flags: fHExtraField},
		"header version 0x0930":        {version: 0x0930, flags: fAdler32D},
		"header version 0x0900":        {version: 0x0900, flags: fCRC32D},
		"method LZO1X-999 label":       {method: methodLZO1X999, flags: fAdler32D},
		"stored blocks":                {flags: fAdler32D | fAdler32C | fCRC32C, store: true},
		"filter 5 with checksums":      {flags: fAdler32D | fCRC32D, filter: 5},
		"long name":                    {flags: fAdler32D, name: string(bytes.Repeat([]byte("n"), 255))},
		"os and charset bits set":      {flags: fAdler32D | 0x0f000000 | 0x00100000},
		"filter flag with filter zero": {flags: fAdler32D | fHFilter},
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			spec.blocks = blocks
			got, err := decompress(buildStream(spec))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("decoded data differs")
			}
		})
	}
}

func TestReaderReadsInSmallPieces(t *testing.T) {
	data := mixedBytes()
	r := NewReader(bytes.NewReader(compress(t, data, 1<<30)))
	var got []byte
	buf := make([]byte, 1000)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("decoded data differs")
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF: %d, %v", n, err)
	}
}

// TestReaderMatchesLzopOnWALEFixture compares against lzop on archives that
// WAL-E itself produced.
func TestReaderMatchesLzopOnWALEFixture(t *testing.T) {
	const dir = "/work/shared/fixtures/wal-e/basic/store/wal_005"
	files, _ := filepath.Glob(filepath.Join(dir, "*.lzo"))
	if len(files) == 0 {
		t.Skipf("WAL-E fixture %s is not present on this machine", dir)
	}
	lzopBin(t)
	for _, f := range files {
		stream, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want := runLzop(t, stream, "-dc")
		got, err := decompress(stream)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: output differs from lzop -dc", filepath.Base(f))
		}
	}
}
