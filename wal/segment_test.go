package wal

import (
	"reflect"
	"testing"
)

func TestParseSegmentRoundTrips(t *testing.T) {
	s, err := ParseSegment("0000000A000000A70000003C")
	if err != nil {
		t.Fatal(err)
	}
	if s != (Segment{0xA, 0xA7, 0x3C}) || s.String() != "0000000A000000A70000003C" {
		t.Fatalf("got %+v %s", s, s)
	}
	if s.Number() != 0xA7_0000003C {
		t.Fatalf("number %x", s.Number())
	}
}

func TestParseSegmentRejectsLowerCaseAndShortNames(t *testing.T) {
	for _, n := range []string{"0000000100000000000000aa", "00000001000000000000001", "00000002.history", ""} {
		if _, err := ParseSegment(n); err == nil {
			t.Errorf("%q accepted", n)
		}
	}
}

func TestNextRollsOverAfterFF(t *testing.T) {
	s, _ := ParseSegment("0000000100000001000000FF")
	if got := s.Next().String(); got != "000000010000000200000000" {
		t.Fatalf("next = %s", got)
	}
}

func TestFutureListsFollowingSegmentsOnlyForPlainSegments(t *testing.T) {
	got := Future("0000000100000000000000FE", 3)
	want := []string{"0000000100000000000000FF", "000000010000000100000000", "000000010000000100000001"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	if Future("00000002.history", 8) != nil {
		t.Fatal("history file has a future")
	}
}

func TestClassify(t *testing.T) {
	cases := map[string]Kind{
		"000000010000000000000002":                 KindSegment,
		"00000002.history":                         KindHistory,
		"000000010000000000000002.00000028.backup": KindBackup,
		"000000010000000000000005.partial":         KindPartial,
		"RECOVERYXLOG":                             KindOther,
	}
	for n, k := range cases {
		if Classify(n) != k {
			t.Errorf("Classify(%q) = %v, want %v", n, Classify(n), k)
		}
	}
}
