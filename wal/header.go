package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// The first page of every WAL segment starts with PostgreSQL's long page
// header (XLogLongPageHeaderData, little-endian on every platform walden
// runs on):
//
//	0  uint16 xlp_magic      WAL format version
//	2  uint16 xlp_info       flags; XLP_LONG_HEADER (0x0002) on a segment's first page
//	4  uint32 xlp_tli        timeline of the first record on the page
//	8  uint64 xlp_pageaddr   WAL address of the page: the segment's start
//	16 uint32 xlp_rem_len
//	24 uint64 xlp_sysid      the cluster's system identifier
//	32 uint32 xlp_seg_size   the cluster's WAL segment size
//	36 uint32 xlp_xlog_blcksz
//
// Checking it is what tells a segment from a truncated file, another
// segment's WAL stored under this name, or another cluster's WAL.
const (
	LongHeaderSize = 40
	xlpLongHeader  = 0x0002
	// xlpAllFlags covers every flag bit any supported major version sets.
	xlpAllFlags = 0x000F
)

// magicMajor maps XLOG_PAGE_MAGIC to the PostgreSQL major version that writes it.
var magicMajor = map[uint16]int{
	0xD093: 9, // 9.6
	0xD097: 10,
	0xD098: 11,
	0xD101: 12,
	0xD106: 13,
	0xD10D: 14,
	0xD110: 15,
	0xD113: 16,
	0xD116: 17,
	0xD118: 18,
}

// MajorForMagic returns the PostgreSQL major version whose WAL carries magic
// (9 stands for 9.6).
func MajorForMagic(magic uint16) (int, bool) {
	v, ok := magicMajor[magic]
	return v, ok
}

// SegmentHeader is the long page header at the start of a WAL segment.
type SegmentHeader struct {
	Magic     uint16
	Info      uint16
	TLI       uint32
	PageAddr  uint64
	SysID     uint64
	SegSize   uint32
	BlockSize uint32
}

// ParseSegmentHeader decodes the first LongHeaderSize bytes of a segment.
func ParseSegmentHeader(b []byte) (SegmentHeader, error) {
	if len(b) < LongHeaderSize {
		return SegmentHeader{}, fmt.Errorf("only %d bytes, shorter than a WAL page header", len(b))
	}
	le := binary.LittleEndian
	return SegmentHeader{
		Magic:     le.Uint16(b[0:]),
		Info:      le.Uint16(b[2:]),
		TLI:       le.Uint32(b[4:]),
		PageAddr:  le.Uint64(b[8:]),
		SysID:     le.Uint64(b[24:]),
		SegSize:   le.Uint32(b[32:]),
		BlockSize: le.Uint32(b[36:]),
	}, nil
}

// StartLSN is the WAL address where the named segment begins for a given
// segment size (XLogSegmentsPerXLogId = 4 GiB / segSize).
func (s Segment) StartLSN(segSize uint32) uint64 {
	return uint64(s.Log)<<32 + uint64(s.Seg)*uint64(segSize)
}

// validSegSize mirrors PostgreSQL's IsValidWalSegSize: a power of two from 1 MiB to 1 GiB.
func validSegSize(n uint32) bool {
	return n >= 1<<20 && n <= 1<<30 && n&(n-1) == 0
}

// HeaderError says why a file is not the WAL segment its name claims.
type HeaderError struct {
	Name    string
	Problem string
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("%s is not a valid WAL segment: %s", e.Name, e.Problem)
}

// IsHeaderError reports whether err is (or wraps) a HeaderError.
func IsHeaderError(err error) bool {
	var he *HeaderError
	return errors.As(err, &he)
}

// Check tells whether h can start the segment called name: a WAL page magic,
// the long-header flag, a valid segment size, the page address of the
// segment's start and a timeline no later than the name's. (The first
// segment of a new timeline begins with pages copied from its parent, so
// an earlier timeline there is normal.)
func (h SegmentHeader) Check(name string) error {
	seg, err := ParseSegment(name)
	if err != nil {
		return &HeaderError{Name: name, Problem: err.Error()}
	}
	bad := func(format string, a ...any) error {
		return &HeaderError{Name: name, Problem: fmt.Sprintf(format, a...)}
	}
	if h.Magic>>8 != 0xD0 && h.Magic>>8 != 0xD1 {
		return bad("page magic %#04x is not PostgreSQL WAL", h.Magic)
	}
	if h.Info&xlpLongHeader == 0 || h.Info&^xlpAllFlags != 0 {
		return bad("first page header flags %#04x lack the long header", h.Info)
	}
	if !validSegSize(h.SegSize) {
		return bad("segment size %d in the header is not a power of two from 1 MiB to 1 GiB", h.SegSize)
	}
	if h.BlockSize < 1024 || h.BlockSize > 65536 || h.BlockSize&(h.BlockSize-1) != 0 {
		return bad("WAL block size %d in the header is invalid", h.BlockSize)
	}
	if segsPerID := uint64(1<<32) / uint64(h.SegSize); uint64(seg.Seg) >= segsPerID {
		return bad("segment number %08X does not exist with %d-byte segments", seg.Seg, h.SegSize)
	}
	if want := seg.StartLSN(h.SegSize); h.PageAddr != want {
		return bad("its first page is at %s, the segment starts at %s (WAL of another segment)", FormatLSN(h.PageAddr), FormatLSN(want))
	}
	if h.TLI == 0 || h.TLI > seg.TLI {
		return bad("its first page is on timeline %d, the name says timeline %d", h.TLI, seg.TLI)
	}
	return nil
}

// FormatLSN prints a WAL address as PostgreSQL does (X/X).
func FormatLSN(lsn uint64) string { return fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn)) }

// CheckReader wraps r, the decoded content of the WAL file called name,
// and fails the read that shows the content is not that segment: a bad
// first page header (as soon as the first LongHeaderSize bytes are in) or a
// length other than the header's segment size (at EOF). Names that are not
// plain segments pass through unchecked. Header() is valid once the first
// page has been read.
func CheckReader(name string, r io.Reader) *SegmentReader {
	return &SegmentReader{name: name, r: r, check: Classify(name) == KindSegment}
}

// SegmentReader is the reader CheckReader returns.
type SegmentReader struct {
	name   string
	r      io.Reader
	check  bool
	head   [LongHeaderSize]byte
	n      int64
	hdr    SegmentHeader
	parsed bool
	err    error
}

// Header returns the segment's long page header once read.
func (s *SegmentReader) Header() (SegmentHeader, bool) { return s.hdr, s.parsed }

func (s *SegmentReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	if s.check && n > 0 {
		if s.n < LongHeaderSize {
			copy(s.head[s.n:], p[:n])
		}
		s.n += int64(n)
		if !s.parsed && s.n >= LongHeaderSize {
			s.hdr, _ = ParseSegmentHeader(s.head[:])
			s.parsed = true
			if cerr := s.hdr.Check(s.name); cerr != nil {
				s.err = cerr
				return 0, cerr
			}
		}
		if s.parsed && s.n > int64(s.hdr.SegSize) {
			s.err = &HeaderError{Name: s.name, Problem: fmt.Sprintf("longer than its %d-byte segment size", s.hdr.SegSize)}
			return 0, s.err
		}
	}
	if err == io.EOF && s.check {
		switch {
		case !s.parsed:
			s.err = &HeaderError{Name: s.name, Problem: fmt.Sprintf("only %d bytes, shorter than a WAL page header", s.n)}
			return n, s.err
		case s.n != int64(s.hdr.SegSize):
			s.err = &HeaderError{Name: s.name, Problem: fmt.Sprintf("%d bytes, its segment size is %d (truncated)", s.n, s.hdr.SegSize)}
			return n, s.err
		}
	}
	return n, err
}

// CheckOpenSegment is CheckReader's check of the WAL file called name held
// in the regular file f, without reading it all: the first page header,
// and the file's size against the header's segment size.
func CheckOpenSegment(name string, f *os.File) (SegmentHeader, error) {
	if Classify(name) != KindSegment {
		return SegmentHeader{}, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return SegmentHeader{}, err
	}
	var head [LongHeaderSize]byte
	n, err := f.ReadAt(head[:], 0)
	if n < len(head) {
		if err != nil && err != io.EOF {
			return SegmentHeader{}, err
		}
		return SegmentHeader{}, &HeaderError{Name: name, Problem: fmt.Sprintf("only %d bytes, shorter than a WAL page header", n)}
	}
	h, _ := ParseSegmentHeader(head[:])
	if err := h.Check(name); err != nil {
		return SegmentHeader{}, err
	}
	switch size := fi.Size(); {
	case size > int64(h.SegSize):
		return SegmentHeader{}, &HeaderError{Name: name, Problem: fmt.Sprintf("longer than its %d-byte segment size", h.SegSize)}
	case size < int64(h.SegSize):
		return SegmentHeader{}, &HeaderError{Name: name, Problem: fmt.Sprintf("%d bytes, its segment size is %d (truncated)", size, h.SegSize)}
	}
	return h, nil
}

// CheckSegmentFile checks a whole segment held in b (as wal-push and the
// prefetch cache see it).
func CheckSegmentFile(name string, b []byte) (SegmentHeader, error) {
	r := CheckReader(name, bytes.NewReader(b))
	if _, err := io.Copy(io.Discard, r); err != nil {
		return SegmentHeader{}, err
	}
	h, _ := r.Header()
	return h, nil
}
