package verify

import (
	"encoding/binary"
	"testing"
)

func TestRecoveryPathSwitchesTimelineAtTheHistorySwitchPoint(t *testing.T) {
	inv := &inventory{segs: map[string]walObject{}, segSize: 16 << 20}
	for _, n := range []string{"000000010000000000000003", "000000010000000000000004", "000000010000000000000005",
		"000000020000000000000005", "000000020000000000000006", "000000030000000000000001"} {
		inv.segs[n] = walObject{Key: "wal_005/" + n + ".lz4", Name: n}
	}
	inv.index()
	h, err := parseHistory([]byte("1\t0/5A00000\tno recovery target specified\n"))
	if err != nil {
		t.Fatal(err)
	}
	hist := map[uint32][]histEntry{2: h}
	p := inv.path(1, hist)
	if len(p) != 2 || p[1].TLI != 2 || p[1].Begin != 5 {
		t.Fatalf("path %+v", p)
	}
	for n, want := range map[uint64]string{4: "000000010000000000000004", 5: "000000020000000000000005", 6: "000000020000000000000006"} {
		if got := inv.expected(p, n); got != want {
			t.Errorf("segment %d: %s, want %s", n, got, want)
		}
	}
	if n, ok := inv.newestOnPath(p); !ok || n != 6 {
		t.Errorf("newest on path: %d %v", n, ok)
	}
	// Timeline 3 branched from 2 at segment 6: recovery follows it, and
	// timeline 2's own segment 6 is no longer on the path.
	hist[3] = append(append([]histEntry{}, h...), histEntry{TLI: 2, Switch: 0x6800000})
	p = inv.path(1, hist)
	if len(p) != 3 || p[2].TLI != 3 || p[2].Begin != 6 {
		t.Fatalf("path %+v", p)
	}
	if got := inv.expected(p, 6); got != "000000030000000000000006" {
		t.Errorf("segment 6: %s", got)
	}
	if n, ok := inv.newestOnPath(p); !ok || n != 5 {
		t.Errorf("newest on path with timeline 3: %d %v", n, ok)
	}
	// A probed timeline that does not descend from the start is not followed.
	if p := inv.path(2, map[uint32][]histEntry{2: h, 3: {{TLI: 1, Switch: 0x1800000}}}); len(p) != 1 || p[0].TLI != 2 {
		t.Errorf("path from 2: %+v", p)
	}
}

func TestControlAndLabelGiveTheBackupStart(t *testing.T) {
	b := make([]byte, 256)
	le := binary.LittleEndian
	le.PutUint64(b[0:], 7711610613508410003)
	le.PutUint32(b[8:], 1300)
	le.PutUint32(b[16:], dbShutdowned)
	le.PutUint64(b[40:], 0x4000028)
	le.PutUint32(b[48:], 1)
	c, err := parseControl(b)
	if err != nil || c.SysID != 7711610613508410003 || c.Redo != 0x4000028 || c.Timeline != 1 || c.State != dbShutdowned {
		t.Errorf("control %+v %v", c, err)
	}
	if _, err := parseControl(b[:20]); err == nil {
		t.Error("a short pg_control parsed")
	}
	l, err := parseLabel([]byte("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 1\n"))
	if err != nil || l.Start != 0x2000028 || l.File != "000000010000000000000002" || l.Timeline != 1 {
		t.Errorf("label %+v %v", l, err)
	}
	if majorOf("PostgreSQL 15.18 (Debian 15.18-0+deb12u1)") != 15 || majorOf("9.6\n") != 9 || majorOfNum(150004) != 15 || majorOfNum(90624) != 9 {
		t.Error("major versions")
	}
}
