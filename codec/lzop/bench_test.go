package lzop

import (
	"bytes"
	"io"
	"testing"
)

const walSegmentSize = 16 << 20

// BenchmarkCompress measures NewWriter on one 16 MiB WAL-like segment, the
// archiving hot path.
func BenchmarkCompress(b *testing.B) {
	data := walLike(walSegmentSize, 1)
	var out bytes.Buffer
	out.Grow(walSegmentSize)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out.Reset()
		w := NewWriter(&out)
		if _, err := w.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(100*float64(out.Len())/float64(len(data)), "%size")
}

// BenchmarkDecompress measures NewReader (checksums included) on the same
// segment, the restore path.
func BenchmarkDecompress(b *testing.B) {
	data := walLike(walSegmentSize, 1)
	stream := compress(b, data, 1<<30)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n, err := io.Copy(io.Discard, NewReader(bytes.NewReader(stream)))
		if err != nil || n != int64(len(data)) {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkCompressRandom bounds the cost of incompressible segments.
func BenchmarkCompressRandom(b *testing.B) {
	data := randomBytes(walSegmentSize, 2)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		w := NewWriter(io.Discard)
		w.Write(data)
		w.Close()
	}
}

// BenchmarkDecompressLzopOutput decodes lzop's own LZO1X-1 output.
func BenchmarkDecompressLzopOutput(b *testing.B) {
	data := walLike(walSegmentSize, 1)
	stream := runLzop(b, data, "-c")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := io.Copy(io.Discard, NewReader(bytes.NewReader(stream))); err != nil {
			b.Fatal(err)
		}
	}
}
