package lzop

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/adler32"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
)

// lzopBin returns the path of the real lzop program. CI installs it, so a
// missing binary fails the test instead of skipping it.
func lzopBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("lzop")
	if err != nil {
		t.Fatalf("the lzop program is required for this test: %v", err)
	}
	return p
}

// runLzop runs lzop with args, feeding stdin, and returns its stdout.
func runLzop(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(lzopBin(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("lzop %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// compress runs data through NewWriter, writing in chunks of chunk bytes.
func compress(t testing.TB, data []byte, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for p := data; len(p) > 0; {
		n := min(chunk, len(p))
		if k, err := w.Write(p[:n]); err != nil || k != n {
			t.Fatalf("Write: %d, %v", k, err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

// decompress decodes a whole stream with NewReader.
func decompress(stream []byte) ([]byte, error) {
	return io.ReadAll(NewReader(bytes.NewReader(stream)))
}

// walLike builds n bytes resembling a PostgreSQL WAL segment: 8 KiB pages
// with page headers and variable-length records (headers with advancing
// LSNs and xids, tuple payloads of words and numbers, the odd full-page
// image), with the last quarter zero-filled as in a switched segment.
func walLike(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	words := []string{"alpha", "bravo", "charlie", "delta", "order", "customer",
		"shipped", "pending", "invoice", "2024-05-01", "NULL", "postgres", "public"}
	out := make([]byte, n)
	used := n - n/4
	lsn := uint64(0x16B374D8)
	xid := uint32(733)
	pos := 0
	for pos < used {
		if pos%8192 == 0 {
			hdr := out[pos:min(pos+24, used)]
			if len(hdr) == 24 {
				binary.LittleEndian.PutUint16(hdr[0:], 0xD10D)
				binary.LittleEndian.PutUint16(hdr[2:], 5)
				binary.LittleEndian.PutUint32(hdr[4:], 1)
				binary.LittleEndian.PutUint64(hdr[8:], lsn&^8191)
				binary.LittleEndian.PutUint32(hdr[16:], uint32(rng.IntN(200)))
			}
			pos += 24
			continue
		}
		var rec []byte
		rec = binary.LittleEndian.AppendUint32(rec, 0) // total length, set below
		rec = binary.LittleEndian.AppendUint32(rec, xid)
		rec = binary.LittleEndian.AppendUint64(rec, lsn)
		rec = append(rec, 0x10, byte(rng.IntN(3)*10), 0, 0)
		rec = binary.LittleEndian.AppendUint32(rec, rng.Uint32()) // CRC
		rec = append(rec, 0, 0x20, byte(rng.IntN(4)), 0)
		rec = binary.LittleEndian.AppendUint32(rec, 1663)
		rec = binary.LittleEndian.AppendUint32(rec, 16384)
		rec = binary.LittleEndian.AppendUint32(rec, 24576+uint32(rng.IntN(8)))
		rec = binary.LittleEndian.AppendUint32(rec, uint32(rng.IntN(5000)))
		if rng.IntN(40) == 0 {
			// Full-page image: line pointers, free space hole, tuples.
			img := make([]byte, 2048+rng.IntN(4096))
			for i := 0; i+4 <= 256 && i+4 <= len(img); i += 4 {
				binary.LittleEndian.PutUint32(img[i:], uint32(8192-i*24))
			}
			for i := len(img) / 2; i < len(img); i++ {
				img[i] = words[(i/7)%len(words)][i%4]
			}
			rec = append(rec, img...)
		} else {
			ncol := 2 + rng.IntN(6)
			for c := 0; c < ncol; c++ {
				switch rng.IntN(3) {
				case 0:
					rec = binary.LittleEndian.AppendUint64(rec, uint64(rng.IntN(100000)))
				case 1:
					w := words[rng.IntN(len(words))]
					rec = append(rec, byte(len(w)*2+1))
					rec = append(rec, w...)
				default:
					rec = fmt.Appendf(rec, "%d.%02d", rng.IntN(1000), rng.IntN(100))
				}
			}
		}
		for len(rec)%8 != 0 {
			rec = append(rec, 0)
		}
		binary.LittleEndian.PutUint32(rec[0:], uint32(len(rec)))
		end := min(pos+len(rec), used)
		// Records continue across page boundaries after the next header.
		for i := 0; pos < end; i++ {
			if pos%8192 == 0 {
				break
			}
			out[pos] = rec[i]
			pos++
		}
		lsn += uint64(len(rec))
		if rng.IntN(4) == 0 {
			xid++
		}
	}
	return out
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func textBytes(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%d: the quick brown fox jumps over the lazy dog %x, again and again\n", i, i*i)
	}
	return b.Bytes()[:n]
}

// mixedBytes exercises every kind of LZO1X instruction: text, long zero
// runs, random stretches (literal runs), short repeats and far repeats.
func mixedBytes() []byte {
	var b bytes.Buffer
	b.Write(textBytes(70000))
	b.Write(make([]byte, 40000))
	b.Write(randomBytes(20000, 3))
	b.Write(bytes.Repeat([]byte("abcab"), 3000))
	b.Write(walLike(300000, 9))
	b.Write(randomBytes(300000, 4))
	r := randomBytes(60000, 5)
	b.Write(r)
	b.Write(textBytes(5000))
	b.Write(r[:30000])
	return b.Bytes()
}

// streamSpec describes an lzop stream to assemble by hand, for header and
// block variants the writer never produces.
type streamSpec struct {
	version uint16 // 0 means 0x1040
	method  byte   // 0 means 1
	flags   uint32
	filter  uint32
	name    string
	extra   []byte
	blocks  [][]byte
	store   bool // store every block raw
}

// buildStream assembles s; block data is filtered (when s asks for a filter)
// and compressed with this package's compressor.
func buildStream(s streamSpec) []byte {
	if s.version == 0 {
		s.version = lzopVersion
	}
	if s.method == 0 {
		s.method = methodLZO1X1
	}
	if s.filter != 0 {
		s.flags |= fHFilter
	}
	b := append([]byte(nil), magic[:]...)
	b = binary.BigEndian.AppendUint16(b, s.version)
	b = binary.BigEndian.AppendUint16(b, libVersion)
	if s.version >= 0x0940 {
		b = binary.BigEndian.AppendUint16(b, neededVersion)
	}
	b = append(b, s.method)
	if s.version >= 0x0940 {
		b = append(b, 5)
	}
	b = binary.BigEndian.AppendUint32(b, s.flags)
	if s.flags&fHFilter != 0 {
		b = binary.BigEndian.AppendUint32(b, s.filter)
	}
	b = binary.BigEndian.AppendUint32(b, 0o100644)
	b = binary.BigEndian.AppendUint32(b, 1700000000)
	if s.version >= 0x0940 {
		b = binary.BigEndian.AppendUint32(b, 0)
	}
	b = append(b, byte(len(s.name)))
	b = append(b, s.name...)
	sum := func(p []byte) uint32 {
		if s.flags&fHCRC32 != 0 {
			return crc32.ChecksumIEEE(p)
		}
		return adler32.Checksum(p)
	}
	b = binary.BigEndian.AppendUint32(b, sum(b[len(magic):]))
	if s.flags&fHExtraField != 0 {
		start := len(b)
		b = binary.BigEndian.AppendUint32(b, uint32(len(s.extra)))
		b = append(b, s.extra...)
		b = binary.BigEndian.AppendUint32(b, sum(b[start:]))
	}
	var c compressor
	for _, blk := range s.blocks {
		src := append([]byte(nil), blk...)
		if s.filter != 0 {
			n := int(s.filter)
			for i := len(src) - 1; i >= n; i-- {
				src[i] -= src[i-n]
			}
		}
		enc := make([]byte, maxCompressedLen(len(src)))
		enc = enc[:c.compress(enc, src)]
		if s.store || len(enc) >= len(src) {
			enc = src
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(blk)))
		b = binary.BigEndian.AppendUint32(b, uint32(len(enc)))
		if s.flags&fAdler32D != 0 {
			b = binary.BigEndian.AppendUint32(b, adler32.Checksum(blk))
		}
		if s.flags&fCRC32D != 0 {
			b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(blk))
		}
		if len(enc) < len(blk) {
			if s.flags&fAdler32C != 0 {
				b = binary.BigEndian.AppendUint32(b, adler32.Checksum(enc))
			}
			if s.flags&fCRC32C != 0 {
				b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(enc))
			}
		}
		b = append(b, enc...)
	}
	return binary.BigEndian.AppendUint32(b, 0)
}

// headerLen returns the length of a stream's header (magic through header
// checksum, without an extra field), parsed the way the reader does.
func headerLen(t testing.TB, s []byte) int {
	t.Helper()
	p := len(magic)
	version := binary.BigEndian.Uint16(s[p:])
	p += 4
	if version >= 0x0940 {
		p += 2
	}
	p++
	if version >= 0x0940 {
		p++
	}
	flags := binary.BigEndian.Uint32(s[p:])
	p += 4
	if flags&fHFilter != 0 {
		p += 4
	}
	p += 8
	if version >= 0x0940 {
		p += 4
	}
	p += 1 + int(s[p])
	return p + 4
}
