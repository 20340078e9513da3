package gpg

// IsEncrypted reports whether prefix (the first bytes of an object) looks
// like a binary OpenPGP message as `gpg -e` writes it: a public-key
// encrypted session key packet (tag 1, old or new packet format) whose
// version byte, when present, is 3 or 6. lzop (89 4C 5A 4F), lz4
// (04 22 4D 18) and zstd (28 B5 2F FD) magics and tar headers never start
// that way, and the version check rejects WAL pages (9.5's magic D087 has
// the 0x87 first byte), so readers can auto-detect encryption.
func IsEncrypted(prefix []byte) bool {
	if len(prefix) == 0 {
		return false
	}
	b := prefix[0]
	var body int // offset of the packet body, i.e. of the version byte
	switch b & 0xC0 {
	case 0xC0: // new format: tag in the low 6 bits
		if b&0x3F != 1 {
			return false
		}
		if len(prefix) < 2 {
			return true
		}
		switch l := prefix[1]; {
		case l < 192:
			body = 2
		case l < 224:
			body = 3
		case l == 255:
			body = 6
		default: // partial lengths are not allowed for a PKESK
			return false
		}
	case 0x80: // old format: tag in bits 5..2, length type in bits 1..0
		if (b>>2)&0x0F != 1 {
			return false
		}
		body = [4]int{2, 3, 5, 1}[b&3]
	default:
		return false
	}
	if len(prefix) <= body {
		return true
	}
	v := prefix[body]
	return v == 3 || v == 6
}
