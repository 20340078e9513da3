package gpg

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// keySpec is a parsed user id in the forms `gpg -r` accepts (GnuPG's
// classify_user_id), so a WALE_GPG_KEY_ID that worked with WAL-E selects
// the same key here.
type keySpec struct {
	mode  specMode
	id    uint64 // short (low 32 bits) or long key id
	fpr   []byte
	text  string
	exact bool // "ID!": use exactly this (sub)key, not the best subkey
}

type specMode int

const (
	specShortID specMode = iota
	specLongID
	specFingerprint
	specSubstring // default: case-insensitive substring of a user id
	specExactUID  // "=Full Name <mail>"
	specMail      // "<mail>": exact e-mail, case-insensitive
	specMailSub   // "@part": substring of the e-mail
	specMailEnd   // ".domain": e-mail ends with it
)

func isHex(s string) bool {
	if s == "" {
		return false
	}
	_, err := hex.DecodeString(s + strings.Repeat("0", len(s)%2))
	return err == nil
}

func parseKeySpec(raw string) (keySpec, error) {
	s := strings.TrimLeft(raw, " \t")
	if s == "" {
		return keySpec{}, errors.New("empty key id")
	}
	switch s[0] {
	case '<':
		return keySpec{mode: specMail, text: strings.TrimSuffix(s[1:], ">")}, nil
	case '@':
		return keySpec{mode: specMailSub, text: s[1:]}, nil
	case '.':
		return keySpec{mode: specMailEnd, text: s[1:]}, nil
	case '=':
		return keySpec{mode: specExactUID, text: s[1:]}, nil
	case '*':
		return keySpec{mode: specSubstring, text: s[1:]}, nil
	}

	body := strings.TrimRight(s, " \t")
	hexPrefix := strings.HasPrefix(body, "0x") || strings.HasPrefix(body, "0X")
	if hexPrefix {
		body = body[2:]
	}
	exact := strings.HasSuffix(body, "!")
	body = strings.TrimSuffix(body, "!")
	if isHex(body) {
		// gpg tolerates one leading 0 in front of an unprefixed id.
		if !hexPrefix && body[0] == '0' {
			switch len(body) {
			case 9, 17, 41, 65:
				body = body[1:]
			}
		}
		switch len(body) {
		case 8, 16:
			v, _ := strconv.ParseUint(body, 16, 64)
			mode := specShortID
			if len(body) == 16 {
				mode = specLongID
			}
			return keySpec{mode: mode, id: v, exact: exact}, nil
		case 40, 64:
			b, _ := hex.DecodeString(body)
			return keySpec{mode: specFingerprint, fpr: b, exact: exact}, nil
		}
	}
	if hexPrefix {
		return keySpec{}, errors.New("invalid key id " + strconv.Quote(raw) + " (0x needs 8, 16, 40 or 64 hex digits)")
	}
	// A fingerprint as gpg prints it, in groups of four.
	if compact := strings.ReplaceAll(body, " ", ""); len(compact) == 40 && isHex(compact) {
		b, _ := hex.DecodeString(compact)
		return keySpec{mode: specFingerprint, fpr: b}, nil
	}
	return keySpec{mode: specSubstring, text: s}, nil
}

// match reports whether the spec names e. The returned entity is e itself,
// or for an exact ("!") id a copy that offers only the named key, so
// that EncryptionKey cannot pick a different subkey.
func (k keySpec) match(e *openpgp.Entity) (*openpgp.Entity, bool) {
	switch k.mode {
	case specShortID, specLongID, specFingerprint:
		for _, pk := range entityKeys(e) {
			if k.matchKey(pk) {
				if k.exact {
					return restrict(e, pk), true
				}
				return e, true
			}
		}
		return nil, false
	}
	for _, id := range e.Identities {
		if id.UserId != nil && k.matchUID(id.UserId.Id) {
			return e, true
		}
	}
	return nil, false
}

func (k keySpec) matchKey(pk *packet.PublicKey) bool {
	switch k.mode {
	case specShortID:
		return uint32(pk.KeyId) == uint32(k.id)
	case specLongID:
		return pk.KeyId == k.id
	default:
		return bytes.Equal(pk.Fingerprint, k.fpr)
	}
}

func (k keySpec) matchUID(uid string) bool {
	switch k.mode {
	case specExactUID:
		return uid == k.text
	case specSubstring:
		return containsFold(uid, k.text)
	}
	mail, ok := uidMail(uid)
	if !ok {
		return false
	}
	switch k.mode {
	case specMail:
		return strings.EqualFold(mail, k.text)
	case specMailSub:
		return containsFold(mail, k.text)
	default:
		return len(mail) >= len(k.text) && strings.EqualFold(mail[len(mail)-len(k.text):], k.text)
	}
}

// uidMail extracts the part between '<' and '>' as GnuPG does.
func uidMail(uid string) (string, bool) {
	i := strings.IndexByte(uid, '<')
	if i < 0 {
		return "", false
	}
	rest := uid[i+1:]
	j := strings.IndexByte(rest, '>')
	if j < 0 {
		return "", false
	}
	return rest[:j], true
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func entityKeys(e *openpgp.Entity) []*packet.PublicKey {
	keys := []*packet.PublicKey{e.PrimaryKey}
	for _, s := range e.Subkeys {
		keys = append(keys, s.PublicKey)
	}
	return keys
}

// restrict returns a shallow copy of e whose only encryption candidate is
// pk (the primary key when pk is primary).
func restrict(e *openpgp.Entity, pk *packet.PublicKey) *openpgp.Entity {
	c := *e
	c.Subkeys = nil
	for _, s := range e.Subkeys {
		if s.PublicKey == pk {
			c.Subkeys = []openpgp.Subkey{s}
		}
	}
	return &c
}
