package lzop

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecompressHandcraftedInstructions(t *testing.T) {
	cases := []struct {
		name string
		src  []byte
		want string
	}{
		{"end marker only", []byte{0x11, 0, 0}, ""},
		{"first-byte literals", []byte{17 + 5, 'h', 'e', 'l', 'l', 'o', 0x11, 0, 0}, "hello"},
		{"short first-byte literals", []byte{17 + 2, 'h', 'i', 0x11, 0, 0}, "hi"},
		// 4 literals, M2 (len 3, dist 4, one trailing literal), then an
		// M1 two-byte match at distance 2.
		{"M2 then M1", []byte{0x15, 'a', 'b', 'c', 'd', 0x4d, 0x00, 'x', 0x04, 0x00, 0x11, 0, 0}, "abcdabcxcx"},
		// Literal run opcode (t=1: 4 literals), then M3 of length 10 at
		// distance 1: an overlapping copy.
		{"M3 overlapping", []byte{0x01, 'a', 'b', 'c', 'd', 32 | 8, 0, 0, 0x11, 0, 0}, "abcd" + "dddddddddd"},
		// Extended literal run: opcode 0 then 1 -> 15+1+3 = 19 literals.
		{"extended literal run", append(append([]byte{0, 1}, "0123456789abcdefghi"...), 0x11, 0, 0), "0123456789abcdefghi"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, len(tc.want))
			if err := lzo1xDecompress(dst, tc.src); err != nil {
				t.Fatal(err)
			}
			if string(dst) != tc.want {
				t.Fatalf("got %q, want %q", dst, tc.want)
			}
		})
	}
}

func TestDecompressRejectsUnsafeInput(t *testing.T) {
	cases := []struct {
		name   string
		src    []byte
		outLen int
		want   error
	}{
		{"empty input", nil, 0, errInputOverrun},
		{"match before block start", []byte{0x12, 'a', 0x4c | 0x20, 0x00, 0x11, 0, 0}, 5, errLookbehind},
		{"M4 before block start", []byte{0x12, 'a', 0x12, 0x04, 0x00, 0x11, 0, 0}, 10, errLookbehind},
		{"M1 before block start", []byte{0x12, 'a', 0x0c, 0x00, 0x11, 0, 0}, 3, errLookbehind},
		{"literals past output", []byte{17 + 5, 'h', 'e', 'l', 'l', 'o', 0x11, 0, 0}, 4, errOutputOverrun},
		{"match past output", []byte{0x15, 'a', 'b', 'c', 'd', 0x4c, 0x00, 0x11, 0, 0}, 6, errOutputOverrun},
		{"literals past input", []byte{17 + 5, 'h', 'e'}, 5, errInputOverrun},
		{"no end marker", []byte{17 + 2, 'h', 'i'}, 2, errInputOverrun},
		{"bytes after end marker", []byte{17 + 2, 'h', 'i', 0x11, 0, 0, 0}, 2, errInputNotUsed},
		{"output shorter than declared", []byte{17 + 2, 'h', 'i', 0x11, 0, 0}, 3, errOutputTooShort},
		{"endless zero length bytes", append([]byte{0}, make([]byte, 100)...), 1 << 20, errInputOverrun},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := lzo1xDecompress(make([]byte, tc.outLen), tc.src)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDecompressRejectsEveryTruncation checks input bounds on real encoder
// output cut at every length.
func TestDecompressRejectsEveryTruncation(t *testing.T) {
	src := mixedBytes()[:20000]
	var c compressor
	enc := make([]byte, maxCompressedLen(len(src)))
	enc = enc[:c.compress(enc, src)]
	dst := make([]byte, len(src))
	for n := 0; n < len(enc); n++ {
		if err := lzo1xDecompress(dst, enc[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(enc))
		}
	}
	if err := lzo1xDecompress(dst, enc); err != nil || !bytes.Equal(dst, src) {
		t.Fatalf("full input: %v", err)
	}
}

// TestCompressorEncodesAllMatchForms round-trips data built to need M2, M3
// and M4 matches, extended lengths and every literal run form.
func TestCompressorEncodesAllMatchForms(t *testing.T) {
	rnd := randomBytes(60000, 77)
	var b []byte
	b = append(b, rnd[:300]...)           // extended first literal run
	b = append(b, rnd[:6]...)             // M2
	b = append(b, rnd[1000:1001]...)      // one trailing literal
	b = append(b, rnd[:40]...)            // M3 length
	b = append(b, rnd[2000:2010]...)      // short literal run
	b = append(b, make([]byte, 20000)...) // extended M3 at distance 1
	b = append(b, rnd[:10]...)            // M4 at ~20 KiB
	b = append(b, rnd[40000:40100]...)    // literals
	b = append(b, rnd[40:300]...)         // extended M4
	b = append(b, rnd[50000:50003]...)    // trailing literals
	b = append(b, rnd[40000:40050]...)    // M3 at distance < 16 KiB
	b = append(b, rnd[45000:45002]...)    // final short literals
	var c compressor
	enc := make([]byte, maxCompressedLen(len(b)))
	enc = enc[:c.compress(enc, b)]
	if len(enc) > 560 {
		t.Fatalf("encoded %d bytes to %d: matches were missed", len(b), len(enc))
	}
	dst := make([]byte, len(b))
	if err := lzo1xDecompress(dst, enc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst, b) {
		t.Fatal("round trip differs")
	}
	// lzop itself must accept this block too.
	got := runLzop(t, compress(t, b, 1<<30), "-dc")
	if !bytes.Equal(got, b) {
		t.Fatal("lzop decodes differently")
	}
}

func TestCompressorOutputStaysWithinBound(t *testing.T) {
	var c compressor
	for _, n := range []int{0, 1, 2, 3, 4, 12, 13, 17, 18, 19, 238, 239, 240, 1000, blockSize} {
		src := randomBytes(n, uint64(n))
		enc := make([]byte, maxCompressedLen(n))
		enc = enc[:c.compress(enc, src)]
		dst := make([]byte, n)
		if err := lzo1xDecompress(dst, enc); err != nil || !bytes.Equal(dst, src) {
			t.Fatalf("%d random bytes: %v", n, err)
		}
	}
}
