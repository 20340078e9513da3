package lzop

import "encoding/binary"

const (
	adlerMod = 65521
	// adlerNMax is the most bytes summed before s2 could overflow 32 bits
	// (zlib's NMAX); it is a multiple of 8.
	adlerNMax = 5552
)

// adler32Sum is hash/adler32.Checksum computed eight bytes at a time: the
// byte sum and the position-weighted sum of each word come from SWAR
// multiplies on 16-bit lanes, which shortens the s1→s2 dependency chain that
// bounds the byte-at-a-time loop. Checksums run over every block in both
// directions, so this is on the hot path.
func adler32Sum(p []byte) uint32 {
	const (
		lanes     = 0x00ff00ff00ff00ff
		ones      = 0x0001000100010001
		evenWeigh = 0x0008000600040002 // bytes 0,2,4,6 weigh 8,6,4,2
		oddWeigh  = 0x0007000500030001 // bytes 1,3,5,7 weigh 7,5,3,1
	)
	s1, s2 := uint32(1), uint32(0)
	for len(p) > 0 {
		n := min(len(p), adlerNMax)
		q := p[:n]
		p = p[n:]
		for len(q) >= 8 {
			v := binary.LittleEndian.Uint64(q)
			even := v & lanes
			odd := (v >> 8) & lanes
			sum := uint32(((even + odd) * ones) >> 48)
			weighted := uint32((even*evenWeigh)>>48) + uint32((odd*oddWeigh)>>48)
			s2 += 8*s1 + weighted
			s1 += sum
			q = q[8:]
		}
		for _, b := range q {
			s1 += uint32(b)
			s2 += s1
		}
		s1 %= adlerMod
		s2 %= adlerMod
	}
	return s2<<16 | s1
}
