// Package lzop reads and writes the lzop container format with LZO1X data,
// as written by the lzop program and read by WAL-E, without needing lzop.
//
// The reader accepts what lzop 1.01 to 1.04 write: methods LZO1X-1,
// LZO1X-1(15) and LZO1X-999, Adler-32 or CRC-32 header and block checksums,
// an optional extra header field, and lzop's delta filters 1 to 16. The
// writer produces the same container as `lzop -c` reading a pipe, with an
// LZO1X-1 style compressor.
package lzop

import (
	"errors"
	"io"
)

// ErrCorrupt is wrapped by every error caused by the content of the stream:
// bad magic, failed checksums, impossible lengths, undecodable LZO1X data,
// unsupported methods or filters, and truncation (which also wraps
// io.ErrUnexpectedEOF).
var ErrCorrupt = errors.New("lzop: corrupt stream")

var magic = [9]byte{0x89, 'L', 'Z', 'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a}

// Header flags (lzop's F_*).
const (
	fAdler32D     = 0x00000001
	fAdler32C     = 0x00000002
	fStdin        = 0x00000004
	fStdout       = 0x00000008
	fNameDefault  = 0x00000010
	fDosish       = 0x00000020
	fHExtraField  = 0x00000040
	fGMTDiff      = 0x00000080
	fCRC32D       = 0x00000100
	fCRC32C       = 0x00000200
	fMultipart    = 0x00000400
	fHFilter      = 0x00000800
	fHCRC32       = 0x00001000
	fHPath        = 0x00002000
	fMask         = 0x00003fff
	fOSMask       = 0xff000000
	fCharsetMask  = 0x00f00000
	fReserved     = ^uint32(fMask | fOSMask | fCharsetMask)
	fOSUnix       = 0x03000000
	writerFlags   = fOSUnix | fStdout | fStdin | fAdler32D
	lzopVersion   = 0x1040 // the lzop version this package writes and reads up to
	libVersion    = 0x20a0
	neededVersion = 0x0940
	firstVersion  = 0x0900 // lzop never wrote anything older

	methodLZO1X1   = 1
	methodLZO1X115 = 2
	methodLZO1X999 = 3
	writerLevel    = 5 // what lzop records for its default LZO1X-1

	// blockSize is lzop's default block; maxBlockSize is lzop's own sanity
	// limit for a block it will decode.
	blockSize    = 256 * 1024
	maxBlockSize = 64 * 1024 * 1024
	// maxExpansion bounds how many output bytes one input byte of LZO1X can
	// produce (a zero length-extension byte stands for 255), so a block
	// header claiming more is rejected before allocating for it.
	maxExpansion = 256
)

// NewReader returns a reader that decodes an lzop stream from r, verifying
// every header and block checksum. Errors caused by the data wrap ErrCorrupt;
// a stream that stops before its end marker also wraps io.ErrUnexpectedEOF.
func NewReader(r io.Reader) io.Reader { return newReader(r) }

// NewWriter returns a writer producing an lzop stream into w. Close writes the
// end marker (it does not close w).
func NewWriter(w io.Writer) io.WriteCloser { return newWriter(w) }
