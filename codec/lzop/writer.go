package lzop

import (
	"encoding/binary"
	"errors"
	"io"
	"time"
)

// errWriterClosed is returned by writes after Close.
var errWriterClosed = errors.New("lzop: write after Close")

// blockHeaderLen is the uncompressed length, compressed length and Adler-32
// of the uncompressed data that precede each block the writer emits.
const blockHeaderLen = 12

type writer struct {
	w       io.Writer
	buf     []byte // pending input, less than one block
	out     []byte // block header and encoded block, reused
	comp    compressor
	started bool
	closed  bool
	err     error
}

func newWriter(w io.Writer) *writer { return &writer{w: w} }

// Write implements io.Writer, emitting a block for every 256 KiB of input.
func (z *writer) Write(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.closed {
		return 0, errWriterClosed
	}
	n := 0
	for len(p) > 0 {
		if len(z.buf) == 0 && len(p) >= blockSize {
			// Whole blocks are compressed straight from the caller's
			// slice.
			if err := z.writeBlock(p[:blockSize]); err != nil {
				return n, err
			}
			p = p[blockSize:]
			n += blockSize
			continue
		}
		if want := min(blockSize, len(z.buf)+len(p)); cap(z.buf) < want {
			// Grow toward one block as input arrives, so small streams
			// stay small.
			grown := make([]byte, len(z.buf), min(blockSize, max(want, 2*cap(z.buf))))
			copy(grown, z.buf)
			z.buf = grown
		}
		k := copy(z.buf[len(z.buf):cap(z.buf)], p)
		z.buf = z.buf[:len(z.buf)+k]
		p = p[k:]
		n += k
		if len(z.buf) == blockSize {
			if err := z.writeBlock(z.buf); err != nil {
				return n, err
			}
			z.buf = z.buf[:0]
		}
	}
	return n, nil
}

// Close writes any pending block and the end marker. It does not close the
// underlying writer. Calling it again returns the first error, if any.
func (z *writer) Close() error {
	if z.closed || z.err != nil {
		return z.err
	}
	z.closed = true
	if len(z.buf) > 0 {
		if err := z.writeBlock(z.buf); err != nil {
			return err
		}
		z.buf = z.buf[:0]
	}
	if err := z.writeHeader(); err != nil {
		return err
	}
	var end [4]byte
	return z.emit(end[:])
}

// emit writes p to the underlying writer; any failure is sticky, since a
// stream with a missing piece cannot be continued.
func (z *writer) emit(p []byte) error {
	n, err := z.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		z.err = err
	}
	return err
}

// writeHeader writes the header `lzop -c` 1.04 writes when compressing a
// pipe, once.
func (z *writer) writeHeader() error {
	if z.started {
		return nil
	}
	z.started = true
	now := time.Now().Unix()
	var buf [64]byte
	h := buf[:0]
	h = append(h, magic[:]...)
	h = binary.BigEndian.AppendUint16(h, lzopVersion)
	h = binary.BigEndian.AppendUint16(h, libVersion)
	h = binary.BigEndian.AppendUint16(h, neededVersion)
	h = append(h, methodLZO1X1, writerLevel)
	h = binary.BigEndian.AppendUint32(h, writerFlags)
	h = binary.BigEndian.AppendUint32(h, 0) // mode: unknown for a pipe
	h = binary.BigEndian.AppendUint32(h, uint32(now))
	h = binary.BigEndian.AppendUint32(h, uint32(uint64(now)>>32))
	h = append(h, 0) // no file name
	h = binary.BigEndian.AppendUint32(h, adler32Sum(h[len(magic):]))
	return z.emit(h)
}

// writeBlock compresses one block of at most blockSize bytes, storing it raw
// when LZO1X does not make it smaller, as lzop does.
func (z *writer) writeBlock(p []byte) error {
	if err := z.writeHeader(); err != nil {
		return err
	}
	if need := blockHeaderLen + maxCompressedLen(len(p)); len(z.out) < need {
		z.out = make([]byte, need)
	}
	out := z.out
	clen := z.comp.compress(out[blockHeaderLen:], p)
	if clen >= len(p) {
		clen = copy(out[blockHeaderLen:], p)
	}
	binary.BigEndian.PutUint32(out[0:], uint32(len(p)))
	binary.BigEndian.PutUint32(out[4:], uint32(clen))
	binary.BigEndian.PutUint32(out[8:], adler32Sum(p))
	return z.emit(out[:blockHeaderLen+clen])
}
