package lzop

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/adler32"
	"hash/crc32"
	"io"
)

// formatError is an error caused by the stream's content. It reads
// "lzop: ..." and unwraps to ErrCorrupt plus an optional cause such as
// io.ErrUnexpectedEOF.
type formatError struct {
	msg   string
	cause error
}

func (e *formatError) Error() string {
	if e.cause != nil {
		return "lzop: " + e.msg + ": " + e.cause.Error()
	}
	return "lzop: " + e.msg
}

func (e *formatError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrCorrupt, e.cause}
	}
	return []error{ErrCorrupt}
}

func corruptf(format string, args ...any) error {
	return &formatError{msg: fmt.Sprintf(format, args...)}
}

// header holds the fields of the lzop file header the decoder needs.
type header struct {
	version uint16
	method  byte
	flags   uint32
	filter  uint32
}

type reader struct {
	src     *bufio.Reader
	hdr     header
	started bool
	err     error   // sticky: io.EOF after the end marker, or the first failure
	block   int     // number of the block being decoded, for messages
	out     []byte  // decoded bytes of the current block not yet returned
	cbuf    []byte  // compressed block, reused
	dbuf    []byte  // decompressed block, reused
	hacc    []byte  // header bytes covered by the header checksum
	scratch [4]byte // the last 32-bit field read outside the header
}

func newReader(r io.Reader) *reader {
	return &reader{src: bufio.NewReaderSize(r, 32<<10)}
}

// Read implements io.Reader.
func (z *reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(z.out) == 0 {
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.nextBlock()
	}
	n := copy(p, z.out)
	z.out = z.out[n:]
	return n, nil
}

// WriteTo implements io.WriterTo so io.Copy hands over whole decoded blocks
// without an intermediate copy.
func (z *reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		for len(z.out) == 0 {
			if z.err != nil {
				if z.err == io.EOF {
					return total, nil
				}
				return total, z.err
			}
			z.err = z.nextBlock()
		}
		n, err := w.Write(z.out)
		if n < 0 || n > len(z.out) {
			return total, fmt.Errorf("lzop: destination writer returned invalid count %d", n)
		}
		total += int64(n)
		z.out = z.out[n:]
		if err != nil {
			return total, err
		}
		if len(z.out) != 0 {
			return total, io.ErrShortWrite
		}
	}
}

// readFull fills p from the stream; running out of input is truncation.
func (z *reader) readFull(p []byte, what string) error {
	if _, err := io.ReadFull(z.src, p); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return &formatError{msg: "stream truncated in " + what, cause: io.ErrUnexpectedEOF}
		}
		return fmt.Errorf("lzop: reading %s: %w", what, err)
	}
	return nil
}

func (z *reader) read32(what string) (uint32, error) {
	if err := z.readFull(z.scratch[:4], what); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(z.scratch[:4]), nil
}

// hdrBytes reads n header bytes and records them for the header checksum.
func (z *reader) hdrBytes(n int) ([]byte, error) {
	start := len(z.hacc)
	z.hacc = append(z.hacc, make([]byte, n)...)
	if err := z.readFull(z.hacc[start:], "header"); err != nil {
		return nil, err
	}
	return z.hacc[start:], nil
}

func (z *reader) hdr8() (byte, error) {
	b, err := z.hdrBytes(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (z *reader) hdr16() (uint16, error) {
	b, err := z.hdrBytes(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b), nil
}

func (z *reader) hdr32() (uint32, error) {
	b, err := z.hdrBytes(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

// readHeader parses and checks the file header, following the field layout
// lzop uses for each header version.
func (z *reader) readHeader() error {
	var m [len(magic)]byte
	if err := z.readFull(m[:], "magic"); err != nil {
		return err
	}
	if m != magic {
		return corruptf("not an lzop stream (bad magic)")
	}
	z.hacc = make([]byte, 0, 320)
	h := &z.hdr
	var err error
	if h.version, err = z.hdr16(); err != nil {
		return err
	}
	if h.version < firstVersion {
		return corruptf("header version %#04x predates lzop", h.version)
	}
	if _, err = z.hdr16(); err != nil { // LZO library version: informational
		return err
	}
	if h.version >= 0x0940 {
		needed, err := z.hdr16()
		if err != nil {
			return err
		}
		if needed > lzopVersion {
			return corruptf("stream needs lzop version %#04x, newer than supported %#04x", needed, lzopVersion)
		}
		if needed < firstVersion {
			return corruptf("bad version-needed-to-extract %#04x", needed)
		}
	}
	if h.method, err = z.hdr8(); err != nil {
		return err
	}
	if h.version >= 0x0940 {
		if _, err = z.hdr8(); err != nil { // compression level: informational
			return err
		}
	}
	if h.flags, err = z.hdr32(); err != nil {
		return err
	}
	if h.flags&fHFilter != 0 {
		if h.filter, err = z.hdr32(); err != nil {
			return err
		}
	}
	// mode, mtime_low and (from 0x0940) mtime_high are not used when
	// streaming.
	skip := 8
	if h.version >= 0x0940 {
		skip = 12
	}
	if _, err = z.hdrBytes(skip); err != nil {
		return err
	}
	nameLen, err := z.hdr8()
	if err != nil {
		return err
	}
	if _, err = z.hdrBytes(int(nameLen)); err != nil {
		return err
	}
	sum, err := z.read32("header")
	if err != nil {
		return err
	}
	if want := z.headerSum(z.hacc); sum != want {
		return corruptf("header checksum mismatch (stored %#08x, computed %#08x)", sum, want)
	}

	switch h.method {
	case methodLZO1X1, methodLZO1X115, methodLZO1X999:
	default:
		return corruptf("unsupported compression method %d (only LZO1X methods 1-3 are supported)", h.method)
	}
	if h.flags&fReserved != 0 {
		return corruptf("reserved header flags set (%#08x)", h.flags&fReserved)
	}
	if h.flags&fMultipart != 0 {
		return corruptf("unsupported multipart stream")
	}
	if h.flags&fHFilter != 0 && h.filter > 16 {
		return corruptf("unsupported filter %d (lzop defines delta filters 1-16)", h.filter)
	}
	if h.flags&fHExtraField != 0 {
		if err := z.skipExtraField(); err != nil {
			return err
		}
	}
	return nil
}

func (z *reader) headerSum(p []byte) uint32 {
	if z.hdr.flags&fHCRC32 != 0 {
		return crc32.ChecksumIEEE(p)
	}
	return adler32Sum(p)
}

// skipExtraField checks and discards the optional extra header field; its
// checksum covers the length word as well as the content.
func (z *reader) skipExtraField() error {
	n, err := z.read32("extra field")
	if err != nil {
		return err
	}
	crc := z.hdr.flags&fHCRC32 != 0
	var h interface {
		Write([]byte) (int, error)
		Sum32() uint32
	}
	if crc {
		h = crc32.NewIEEE()
	} else {
		h = adler32.New()
	}
	h.Write(z.scratch[:4])
	var buf [4096]byte
	for n > 0 {
		k := min(int64(n), int64(len(buf)))
		if err := z.readFull(buf[:k], "extra field"); err != nil {
			return err
		}
		h.Write(buf[:k])
		n -= uint32(k)
	}
	sum, err := z.read32("extra field")
	if err != nil {
		return err
	}
	if want := h.Sum32(); sum != want {
		return corruptf("extra field checksum mismatch (stored %#08x, computed %#08x)", sum, want)
	}
	return nil
}

// nextBlock decodes the next block into z.out, or returns io.EOF at the end
// marker.
func (z *reader) nextBlock() error {
	if !z.started {
		z.started = true
		if err := z.readHeader(); err != nil {
			return err
		}
	}
	z.block++
	ulen, err := z.read32("block header")
	if err != nil {
		return err
	}
	if ulen == 0 {
		return io.EOF
	}
	if ulen > maxBlockSize {
		return corruptf("block %d: uncompressed length %d exceeds lzop's limit of %d", z.block, ulen, maxBlockSize)
	}
	clen, err := z.read32("block header")
	if err != nil {
		return err
	}
	if clen == 0 || clen > ulen {
		return corruptf("block %d: compressed length %d invalid for uncompressed length %d", z.block, clen, ulen)
	}
	if clen < ulen && uint64(ulen) > uint64(clen)*maxExpansion {
		return corruptf("block %d: %d compressed bytes cannot decode to %d bytes", z.block, clen, ulen)
	}
	flags := z.hdr.flags
	var dAdler, dCRC, cAdler, cCRC uint32
	if flags&fAdler32D != 0 {
		if dAdler, err = z.read32("block header"); err != nil {
			return err
		}
	}
	if flags&fCRC32D != 0 {
		if dCRC, err = z.read32("block header"); err != nil {
			return err
		}
	}
	// lzop omits the compressed-data checksums of stored blocks, whose
	// data checksums already cover the same bytes.
	if clen < ulen {
		if flags&fAdler32C != 0 {
			if cAdler, err = z.read32("block header"); err != nil {
				return err
			}
		}
		if flags&fCRC32C != 0 {
			if cCRC, err = z.read32("block header"); err != nil {
				return err
			}
		}
	}
	data, err := z.readData(int(clen))
	if err != nil {
		return err
	}
	out := data
	if clen < ulen {
		if flags&fAdler32C != 0 {
			if got := adler32Sum(data); got != cAdler {
				return corruptf("block %d: compressed data Adler-32 mismatch (stored %#08x, computed %#08x)", z.block, cAdler, got)
			}
		}
		if flags&fCRC32C != 0 {
			if got := crc32.ChecksumIEEE(data); got != cCRC {
				return corruptf("block %d: compressed data CRC-32 mismatch (stored %#08x, computed %#08x)", z.block, cCRC, got)
			}
		}
		if cap(z.dbuf) < int(ulen) {
			z.dbuf = make([]byte, ulen)
		}
		out = z.dbuf[:ulen]
		if err := lzo1xDecompress(out, data); err != nil {
			return &formatError{msg: fmt.Sprintf("block %d", z.block), cause: err}
		}
	}
	if flags&fHFilter != 0 {
		unfilter(out, int(z.hdr.filter))
	}
	if flags&fAdler32D != 0 {
		if got := adler32Sum(out); got != dAdler {
			return corruptf("block %d: Adler-32 mismatch (stored %#08x, computed %#08x)", z.block, dAdler, got)
		}
	}
	if flags&fCRC32D != 0 {
		if got := crc32.ChecksumIEEE(out); got != dCRC {
			return corruptf("block %d: CRC-32 mismatch (stored %#08x, computed %#08x)", z.block, dCRC, got)
		}
	}
	z.out = out
	return nil
}

// readData reads an n-byte block body into the reused buffer. A buffer
// smaller than n grows only as data actually arrives, so a header claiming
// a huge block on a short input cannot force a huge allocation.
func (z *reader) readData(n int) ([]byte, error) {
	if cap(z.cbuf) >= n {
		buf := z.cbuf[:n]
		if err := z.readFull(buf, "block data"); err != nil {
			return nil, err
		}
		return buf, nil
	}
	buf := z.cbuf[:0]
	for len(buf) < n {
		chunk := min(n-len(buf), max(len(buf), 1<<20))
		start := len(buf)
		if cap(buf)-start < chunk {
			grown := make([]byte, start, min(n, max(2*cap(buf), start+chunk)))
			copy(grown, buf)
			buf = grown
		}
		buf = buf[:start+chunk]
		if err := z.readFull(buf[start:], "block data"); err != nil {
			return nil, err
		}
	}
	z.cbuf = buf
	return buf, nil
}

// unfilter undoes lzop's delta filter n (1..16): the compressor stored each
// byte minus the byte n positions earlier in the same block.
func unfilter(p []byte, n int) {
	if n <= 0 {
		return
	}
	for i := n; i < len(p); i++ {
		p[i] += p[i-n]
	}
}

var _ io.WriterTo = (*reader)(nil)
