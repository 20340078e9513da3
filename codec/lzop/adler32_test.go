package lzop

import (
	"hash/adler32"
	"testing"
)

func TestAdler32SumMatchesStandardLibrary(t *testing.T) {
	data := randomBytes(100000, 99)
	ff := make([]byte, 3*adlerNMax+20)
	for i := range ff {
		ff[i] = 0xff
	}
	for _, n := range []int{0, 1, 7, 8, 9, 63, adlerNMax - 1, adlerNMax, adlerNMax + 1, 20000, 100000} {
		if got, want := adler32Sum(data[:n]), adler32.Checksum(data[:n]); got != want {
			t.Fatalf("%d random bytes: %#x, want %#x", n, got, want)
		}
	}
	for n := len(ff) - 30; n <= len(ff); n++ {
		if got, want := adler32Sum(ff[:n]), adler32.Checksum(ff[:n]); got != want {
			t.Fatalf("%d 0xff bytes: %#x, want %#x", n, got, want)
		}
	}
}

func BenchmarkAdler32Sum(b *testing.B) {
	data := randomBytes(1<<20, 1)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		adler32Sum(data)
	}
}

func BenchmarkAdler32StandardLibrary(b *testing.B) {
	data := randomBytes(1<<20, 1)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		adler32.Checksum(data)
	}
}
