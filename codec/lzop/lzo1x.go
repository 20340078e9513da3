package lzop

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// LZO1X instruction limits. The decoder accepts everything the format can
// express (including the M1 matches only LZO1X-999 emits); the encoder uses
// M2, M3 and M4 matches of at least four bytes.
const (
	m2MaxLen    = 8
	m3MaxLen    = 33
	m4MaxLen    = 9
	m2MaxOffset = 0x0800
	m3MaxOffset = 0x4000
	m4MaxOffset = 0xbfff

	hashLog  = 14
	hashSize = 1 << hashLog
	minMatch = 4
	// Matching stops this far before the end so 4- and 8-byte loads stay
	// in bounds; the bytes after it always end up as literals.
	matchTail = 12
	// skipShift sets how fast the match search accelerates through data
	// that does not match: the step grows by one every 1<<skipShift probes.
	skipShift = 6
)

// Decoder failures. They are wrapped with block context (and ErrCorrupt) by
// the reader.
var (
	errInputOverrun   = errors.New("LZO1X input overrun")
	errOutputOverrun  = errors.New("LZO1X output overrun")
	errLookbehind     = errors.New("LZO1X match distance before start of block")
	errInputNotUsed   = errors.New("LZO1X data continues after end marker")
	errOutputTooShort = errors.New("LZO1X block decodes to fewer bytes than its header says")
)

// maxCompressedLen bounds the LZO1X encoding of n bytes: incompressible input
// costs one extra byte per 255 literals plus the opcode and end marker.
func maxCompressedLen(n int) int { return n + n/16 + 64 + 3 }

// lzo1xDecompress decodes src into dst, which must be exactly the decoded
// length. Every read of src, every write of dst and every match source is
// checked, so hostile input yields an error, never a panic or a read outside
// the block.
func lzo1xDecompress(dst, src []byte) error {
	var ip, op, t, mpos int
	inLen, outLen := len(src), len(dst)
	if inLen == 0 {
		return errInputOverrun
	}
	if src[0] > 17 {
		t = int(src[0]) - 17
		ip = 1
		if t < 4 {
			goto matchNext
		}
		if t > inLen-ip {
			return errInputOverrun
		}
		if t > outLen-op {
			return errOutputOverrun
		}
		copy(dst[op:op+t], src[ip:ip+t])
		op += t
		ip += t
		goto firstLiteralRun
	}

loop:
	if ip >= inLen {
		return errInputOverrun
	}
	t = int(src[ip])
	ip++
	if t >= 16 {
		goto match
	}
	if t == 0 {
		for {
			if ip >= inLen {
				return errInputOverrun
			}
			if src[ip] != 0 {
				break
			}
			t += 255
			ip++
			if t > outLen {
				return errOutputOverrun
			}
		}
		t += 15 + int(src[ip])
		ip++
	}
	t += 3
	if t > inLen-ip {
		return errInputOverrun
	}
	if t > outLen-op {
		return errOutputOverrun
	}
	if t <= 16 && inLen-ip >= 16 && outLen-op >= 16 {
		// Short runs: two word copies beat a memmove call; the bytes
		// written past the run are overwritten by what follows.
		binary.LittleEndian.PutUint64(dst[op:], binary.LittleEndian.Uint64(src[ip:]))
		binary.LittleEndian.PutUint64(dst[op+8:], binary.LittleEndian.Uint64(src[ip+8:]))
	} else {
		copy(dst[op:op+t], src[ip:ip+t])
	}
	op += t
	ip += t

firstLiteralRun:
	// After a literal run of four or more bytes a small opcode means a
	// three-byte match reaching past the M2 window.
	if ip >= inLen {
		return errInputOverrun
	}
	t = int(src[ip])
	ip++
	if t >= 16 {
		goto match
	}
	if ip >= inLen {
		return errInputOverrun
	}
	mpos = op - (1 + m2MaxOffset) - (t >> 2) - int(src[ip])<<2
	ip++
	if mpos < 0 {
		return errLookbehind
	}
	if 3 > outLen-op {
		return errOutputOverrun
	}
	dst[op] = dst[mpos]
	dst[op+1] = dst[mpos+1]
	dst[op+2] = dst[mpos+2]
	op += 3
	goto matchDone

match:
	if t >= 64 {
		// M2: length 3..8, distance up to 2 KiB, one extra byte.
		if ip >= inLen {
			return errInputOverrun
		}
		mpos = op - 1 - (t>>2)&7 - int(src[ip])<<3
		ip++
		t = (t >> 5) + 1
	} else if t >= 32 {
		// M3: distance up to 16 KiB.
		t &= 31
		if t == 0 {
			for {
				if ip >= inLen {
					return errInputOverrun
				}
				if src[ip] != 0 {
					break
				}
				t += 255
				ip++
				if t > outLen {
					return errOutputOverrun
				}
			}
			t += 31 + int(src[ip])
			ip++
		}
		t += 2
		if 2 > inLen-ip {
			return errInputOverrun
		}
		mpos = op - 1 - int(src[ip])>>2 - int(src[ip+1])<<6
		ip += 2
	} else if t >= 16 {
		// M4: distance 16..48 KiB; distance 16 KiB exactly is the end marker.
		mpos = op - (t&8)<<11
		t &= 7
		if t == 0 {
			for {
				if ip >= inLen {
					return errInputOverrun
				}
				if src[ip] != 0 {
					break
				}
				t += 255
				ip++
				if t > outLen {
					return errOutputOverrun
				}
			}
			t += 7 + int(src[ip])
			ip++
		}
		t += 2
		if 2 > inLen-ip {
			return errInputOverrun
		}
		mpos -= int(src[ip])>>2 + int(src[ip+1])<<6
		ip += 2
		if mpos == op {
			goto eof
		}
		mpos -= 0x4000
	} else {
		// M1 after trailing literals: two bytes, distance up to 1 KiB.
		if ip >= inLen {
			return errInputOverrun
		}
		mpos = op - 1 - t>>2 - int(src[ip])<<2
		ip++
		if mpos < 0 {
			return errLookbehind
		}
		if 2 > outLen-op {
			return errOutputOverrun
		}
		dst[op] = dst[mpos]
		dst[op+1] = dst[mpos+1]
		op += 2
		goto matchDone
	}

	if mpos < 0 {
		return errLookbehind
	}
	if t > outLen-op {
		return errOutputOverrun
	}
	if d := op - mpos; d >= 8 && t <= 32 && outLen-op >= t+8 {
		// Word copies in order: with a distance of at least 8 each load
		// only reads bytes already final, and the overshoot past the
		// match stays inside dst and is overwritten later.
		end := op + t
		for op < end {
			binary.LittleEndian.PutUint64(dst[op:], binary.LittleEndian.Uint64(dst[mpos:]))
			op += 8
			mpos += 8
		}
		op = end
	} else if d >= t {
		copy(dst[op:op+t], dst[mpos:mpos+t])
		op += t
	} else {
		// Overlapping match: the source region repeats with period
		// op-mpos, so copying the whole written span doubles it each step.
		end := op + t
		for op < end {
			op += copy(dst[op:end], dst[mpos:op])
		}
	}

matchDone:
	// The low two bits of the byte before last carry 0..3 trailing literals.
	t = int(src[ip-2]) & 3
	if t == 0 {
		goto loop
	}

matchNext:
	if t > inLen-ip {
		return errInputOverrun
	}
	if t > outLen-op {
		return errOutputOverrun
	}
	dst[op] = src[ip]
	if t > 1 {
		dst[op+1] = src[ip+1]
		if t > 2 {
			dst[op+2] = src[ip+2]
		}
	}
	op += t
	ip += t
	if ip >= inLen {
		return errInputOverrun
	}
	t = int(src[ip])
	ip++
	goto match

eof:
	if ip != inLen {
		return errInputNotUsed
	}
	if op != outLen {
		return errOutputTooShort
	}
	return nil
}

// compressor holds the LZO1X-1 style match dictionary so it is allocated once
// per writer rather than per block.
type compressor struct {
	// Each entry keeps the four bytes it was hashed from beside their
	// position, so a probe is verified without a dependent load from the
	// block. Positions are stored plus tableBias so a zeroed entry lies
	// beyond the maximum match distance of every position.
	table [hashSize]uint64
}

const tableBias = 1 << 16

func tableEntry(seq uint32, pos int) uint64 { return uint64(seq)<<32 | uint64(pos+tableBias) }

func hash4(u uint32) uint32 { return (u * 0x9E3779B1) >> (32 - hashLog) }

// compress writes the LZO1X encoding of src (one independent block) into
// dst, which must hold maxCompressedLen(len(src)) bytes, and returns the
// encoded length. It is a greedy single-probe matcher like LZO1X-1: speed
// matters more than ratio on the archiving path.
func (c *compressor) compress(dst, src []byte) int {
	n := len(src)
	op, anchor := 0, 0
	if n > matchTail {
		clear(c.table[:])
		limit := n - matchTail
		ip, misses := 1, 0
		for ip < limit {
			seq := binary.LittleEndian.Uint32(src[ip:])
			h := hash4(seq)
			e := c.table[h]
			c.table[h] = tableEntry(seq, ip)
			cand := int(uint32(e)) - tableBias
			if uint32(e>>32) != seq || ip-cand > m4MaxOffset {
				// Step faster the longer matching keeps failing, so
				// incompressible input stays cheap. Counting probes rather
				// than bytes (as LZO1X-1 does) keeps the step small enough
				// to find a repeat soon after a long random stretch.
				misses++
				ip += 1 + misses>>skipShift
				continue
			}
			for ip > anchor && cand > 0 && src[ip-1] == src[cand-1] {
				ip--
				cand--
			}
			mlen := minMatch + matchLen(src, cand+minMatch, ip+minMatch)
			op = emitLiterals(dst, op, src[anchor:ip])
			op = emitMatch(dst, op, ip-cand, mlen)
			ip += mlen
			anchor = ip
			misses = 0
			if ip < limit {
				// Seed the dictionary inside the match so the next
				// repetition is found even when ip lands past it.
				p := ip - 2
				v := binary.LittleEndian.Uint32(src[p:])
				c.table[hash4(v)] = tableEntry(v, p)
			}
		}
	}
	op = emitLiterals(dst, op, src[anchor:])
	dst[op] = 16 | 1
	dst[op+1] = 0
	dst[op+2] = 0
	return op + 3
}

// matchLen counts equal bytes at a and b (a < b) up to the end of src.
func matchLen(src []byte, a, b int) int {
	n := 0
	for b+n+8 <= len(src) {
		x := binary.LittleEndian.Uint64(src[a+n:]) ^ binary.LittleEndian.Uint64(src[b+n:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for b+n < len(src) && src[a+n] == src[b+n] {
		n++
	}
	return n
}

// emitLiterals encodes a literal run. Runs of one to three bytes after a
// match live in the low bits of the match's byte before last; a run at the
// very start uses the 17+n first-byte form.
func emitLiterals(dst []byte, op int, lit []byte) int {
	t := len(lit)
	switch {
	case t == 0:
		return op
	case op == 0 && t <= 238:
		dst[0] = byte(17 + t)
		op = 1
	case t <= 3:
		dst[op-2] |= byte(t)
	case t <= 18:
		dst[op] = byte(t - 3)
		op++
	default:
		dst[op] = 0
		op++
		op = emitLength(dst, op, t-18)
	}
	return op + copy(dst[op:], lit)
}

// emitLength writes an LZO extended length (>= 1): a zero byte per 255 and a
// final non-zero remainder.
func emitLength(dst []byte, op, m int) int {
	for m > 255 {
		m -= 255
		dst[op] = 0
		op++
	}
	dst[op] = byte(m)
	return op + 1
}

// emitMatch encodes a match of mlen >= 3 bytes at distance dist (1..0xbfff)
// in the shortest of the M2, M3 and M4 forms.
func emitMatch(dst []byte, op, dist, mlen int) int {
	switch {
	case mlen <= m2MaxLen && dist <= m2MaxOffset:
		d := dist - 1
		dst[op] = byte((mlen-1)<<5 | (d&7)<<2)
		dst[op+1] = byte(d >> 3)
		return op + 2
	case dist <= m3MaxOffset:
		d := dist - 1
		if mlen <= m3MaxLen {
			dst[op] = byte(32 | (mlen - 2))
			op++
		} else {
			dst[op] = 32
			op = emitLength(dst, op+1, mlen-m3MaxLen)
		}
		dst[op] = byte((d & 63) << 2)
		dst[op+1] = byte(d >> 6)
		return op + 2
	default:
		d := dist - 0x4000
		hi := byte((d & 0x4000) >> 11)
		if mlen <= m4MaxLen {
			dst[op] = 16 | hi | byte(mlen-2)
			op++
		} else {
			dst[op] = 16 | hi
			op = emitLength(dst, op+1, mlen-m4MaxLen)
		}
		dst[op] = byte((d & 63) << 2)
		dst[op+1] = byte((d >> 6) & 0xff)
		return op + 2
	}
}
