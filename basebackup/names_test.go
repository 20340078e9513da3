package basebackup

import "testing"

func TestBackupNameUsesDecimalOffsetLikeWALE(t *testing.T) {
	lsn, err := ParseLSN("0/1583238")
	if err != nil {
		t.Fatal(err)
	}
	file, off := FileNameOffset(1, lsn, 0)
	if got := BackupName(file, off); got != "base_000000010000000000000001_05780024" {
		t.Fatalf("name = %s", got)
	}
}

func TestFileNameOffsetOnSegmentBoundaryNamesPreviousFile(t *testing.T) {
	file, off := FileNameOffset(2, LSN(3*DefaultSegmentSize), DefaultSegmentSize)
	if file != "000000020000000000000002" || off != 0 {
		t.Fatalf("got %s %d", file, off)
	}
	// Crossing a 4 GiB log id.
	file, off = FileNameOffset(1, LSN(0x1_00000028), DefaultSegmentSize)
	if file != "000000010000000100000000" || off != 40 {
		t.Fatalf("got %s %d", file, off)
	}
	// 64 MiB segments.
	file, _ = FileNameOffset(1, LSN(5*64<<20+8), 64<<20)
	if file != "000000010000000000000005" {
		t.Fatalf("64MiB segments: got %s", file)
	}
}

func TestOfflineNameIsTheRealRedoSegment(t *testing.T) {
	redo, _ := ParseLSN("0/4000028")
	if got := BackupName(SegmentOf(1, redo, 0), uint64(redo)%DefaultSegmentSize); got != "base_000000010000000000000004_00000040" {
		t.Fatalf("offline name = %s", got)
	}
}

func TestPadOffsetCutsLikeLpad(t *testing.T) {
	for in, want := range map[uint64]string{0: "00000000", 40: "00000040", 123456789: "12345678"} {
		if got := PadOffset(in); got != want {
			t.Errorf("PadOffset(%d) = %s, want %s", in, got, want)
		}
	}
}

func TestParseLSNRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "12", "0/xyz", "1/2/3"} {
		if _, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q) accepted", s)
		}
	}
	if l, _ := ParseLSN("16/B374D848"); l.String() != "16/B374D848" {
		t.Fatalf("round trip: %s", l)
	}
}

func TestVersionNumFromPGVersion(t *testing.T) {
	for in, want := range map[string]int{"15": 150000, "9.6": 90600, "10": 100000} {
		if got := versionNum(in); got != want {
			t.Errorf("versionNum(%q) = %d, want %d", in, got, want)
		}
	}
}
