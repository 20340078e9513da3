package gpg

import (
	"bytes"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func TestParseKeySpecFollowsGpgClassification(t *testing.T) {
	for _, tc := range []struct {
		in    string
		mode  specMode
		id    uint64
		text  string
		exact bool
	}{
		{"DEADBEEF", specShortID, 0xDEADBEEF, "", false},
		{"0xdeadbeef", specShortID, 0xDEADBEEF, "", false},
		{"0DEADBEEF", specShortID, 0xDEADBEEF, "", false}, // gpg's leading-zero tolerance
		{"0123456789ABCDEF", specLongID, 0x0123456789ABCDEF, "", false},
		{"0123456789ABCDEF!", specLongID, 0x0123456789ABCDEF, "", true},
		{"  0x0123456789abcdef  ", specLongID, 0x0123456789ABCDEF, "", false},
		{"<a@b.c>", specMail, 0, "a@b.c", false},
		{"@b.c", specMailSub, 0, "b.c", false},
		{".c", specMailEnd, 0, "c", false},
		{"=Full Name <a@b.c>", specExactUID, 0, "Full Name <a@b.c>", false},
		{"*name", specSubstring, 0, "name", false},
		{"a@b.c", specSubstring, 0, "a@b.c", false}, // gpg: plain e-mail is a substring search
		{"backup key", specSubstring, 0, "backup key", false},
		{"DEADBEEFX", specSubstring, 0, "DEADBEEFX", false},
	} {
		k, err := parseKeySpec(tc.in)
		if err != nil {
			t.Errorf("parseKeySpec(%q): %v", tc.in, err)
			continue
		}
		if k.mode != tc.mode || k.id != tc.id || k.text != tc.text || k.exact != tc.exact {
			t.Errorf("parseKeySpec(%q) = %+v, want mode %d id %x text %q exact %v", tc.in, k, tc.mode, tc.id, tc.text, tc.exact)
		}
	}
	fp := "8061 5870 F5BA D690 3336  86D0 F2AD 85AC 1E42 B367"
	k, err := parseKeySpec(fp)
	want := []byte{0x80, 0x61, 0x58, 0x70, 0xF5, 0xBA, 0xD6, 0x90, 0x33, 0x36, 0x86, 0xD0, 0xF2, 0xAD, 0x85, 0xAC, 0x1E, 0x42, 0xB3, 0x67}
	if err != nil || k.mode != specFingerprint || !bytes.Equal(k.fpr, want) {
		t.Errorf("parseKeySpec(spaced fingerprint) = %+v, %v", k, err)
	}
	for _, bad := range []string{"", "   ", "0x123", "0xZZZZZZZZ"} {
		if _, err := parseKeySpec(bad); err == nil {
			t.Errorf("parseKeySpec(%q) accepted", bad)
		}
	}
}

func TestUIDMatchingIsCaseInsensitiveWhereGpgIs(t *testing.T) {
	uid := "Walden Test (backups) <Test@Walden.Invalid>"
	for _, tc := range []struct {
		spec string
		want bool
	}{
		{"walden test", true},
		{"<test@walden.invalid>", true},
		{"<test@walden>", false},
		{"@WALDEN.inv", true},
		{".invalid", true},
		{".walden", false},
		{"=" + uid, true},
		{"=walden test (backups) <test@walden.invalid>", false}, // exact is exact
		{"nobody", false},
	} {
		k, err := parseKeySpec(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.matchUID(uid); got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.spec, uid, got, tc.want)
		}
	}
}

func newTestEntity(t *testing.T, email string, created time.Time, lifetime uint32) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity("walden", "", email, &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA, // fast to generate
		Time:            func() time.Time { return created },
		KeyLifetimeSecs: lifetime,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// gpg -r resolves an ambiguous name to the newest usable key; walden must
// encrypt to the same key WAL-E did.
func TestAmbiguousKeyIDPicksNewestUsableKeyLikeGpg(t *testing.T) {
	now := time.Now()
	old := newTestEntity(t, "dba@walden.invalid", now.AddDate(-3, 0, 0), 0)
	cur := newTestEntity(t, "dba@walden.invalid", now.AddDate(-1, 0, 0), 0)
	expired := newTestEntity(t, "dba@walden.invalid", now.AddDate(0, -1, 0), 3600)
	got, err := selectRecipient(openpgp.EntityList{old, expired, cur}, "dba@walden.invalid", false, now)
	if err != nil {
		t.Fatal(err)
	}
	if got != cur {
		t.Fatalf("selected %s, want the newest unexpired key %s", fpr(got), fpr(cur))
	}
	if _, err := selectRecipient(openpgp.EntityList{expired}, "dba@walden.invalid", false, now); err == nil {
		t.Fatal("an expired key was accepted")
	}
	if _, err := selectRecipient(openpgp.EntityList{old, cur}, "", false, now); err == nil {
		t.Fatal("a key file with two keys and no key id was accepted")
	}
}
