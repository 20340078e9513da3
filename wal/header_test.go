package wal

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/walden-pg/walden/codec/lzop"
)

const fixtureWAL = "../testdata/fixtures/wal-e/basic/store/wal_005/"

// fixtureSegment decodes one segment WAL-E archived from PostgreSQL 15.
func fixtureSegment(t *testing.T, name string) []byte {
	t.Helper()
	f, err := os.Open(fixtureWAL + name + ".lzo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(lzop.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRealSegmentsPassTheHeaderCheckUnderTheirOwnName(t *testing.T) {
	for _, name := range []string{"000000010000000000000001", "000000010000000000000004", "000000010000000000000006"} {
		b := fixtureSegment(t, name)
		h, err := CheckSegmentFile(name, b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if maj, ok := MajorForMagic(h.Magic); !ok || maj != 15 {
			t.Errorf("%s: magic %#x maps to %d,%v; want 15", name, h.Magic, maj, ok)
		}
		if h.SysID != 7711610613508410003 || h.SegSize != 16<<20 {
			t.Errorf("%s: sysid %d segsize %d", name, h.SysID, h.SegSize)
		}
	}
}

func TestHeaderCheckRejectsWhatIsNotTheNamedSegment(t *testing.T) {
	good := fixtureSegment(t, "000000010000000000000004")
	flip := func(off int, v uint16) []byte {
		b := append([]byte(nil), good...)
		binary.LittleEndian.PutUint16(b[off:], v)
		return b
	}
	cases := []struct {
		what, name string
		data       []byte
		want       string
	}{
		{"another segment's WAL", "000000010000000000000005", good, "another segment"},
		{"an earlier timeline in the name", "000000000000000000000004", good, "timeline"},
		{"truncated", "000000010000000000000004", good[:len(good)-8192], "truncated"},
		{"too long", "000000010000000000000004", append(append([]byte(nil), good...), 0), "longer"},
		{"empty", "000000010000000000000004", nil, "shorter than a WAL page header"},
		{"bad magic", "000000010000000000000004", flip(0, 0x1234), "magic"},
		{"short header", "000000010000000000000004", flip(2, 0), "long header"},
		{"zeros", "000000010000000000000004", make([]byte, 16<<20), "magic"},
	}
	for _, c := range cases {
		_, err := CheckSegmentFile(c.name, c.data)
		if err == nil || !IsHeaderError(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want a HeaderError containing %q", c.what, err, c.want)
		}
		// The same file on disk, checked without reading it all (the
		// agent's prefetch cache), fails the same way.
		if _, err := checkOpen(t, c.name, c.data); err == nil || !IsHeaderError(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s on disk: err = %v, want a HeaderError containing %q", c.what, err, c.want)
		}
	}
	if h, err := checkOpen(t, "000000010000000000000004", good); err != nil || h.SysID != 7711610613508410003 {
		t.Errorf("the good segment on disk: %v (sysid %d)", err, h.SysID)
	}
	// The first segment of timeline 2 begins with timeline 1's pages.
	if _, err := CheckSegmentFile("000000020000000000000004", good); err != nil {
		t.Errorf("timeline 1 pages under a timeline 2 name: %v", err)
	}
}

func TestCheckReaderPassesNonSegmentsThrough(t *testing.T) {
	r := CheckReader("00000002.history", strings.NewReader("1\t0/5000000\tno recovery target specified\n"))
	b, err := io.ReadAll(r)
	if err != nil || len(b) == 0 {
		t.Fatalf("history file: %v", err)
	}
	var he *HeaderError
	if _, err := CheckSegmentFile("000000010000000000000004", []byte("junk")); !errors.As(err, &he) || he.Name != "000000010000000000000004" {
		t.Fatalf("junk: %v", err)
	}
}

func checkOpen(t *testing.T, name string, data []byte) (SegmentHeader, error) {
	t.Helper()
	p := t.TempDir() + "/" + name
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return CheckOpenSegment(name, f)
}
