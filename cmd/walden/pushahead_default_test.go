package main

import (
	"os"
	"testing"
)

// TestPushAheadIsOnUnlessSetOff pins the default: an agent started without
// WALDEN_PUSH_AHEAD archives ahead; "off" (and its synonyms) turn it off.
func TestPushAheadIsOnUnlessSetOff(t *testing.T) {
	for _, tc := range []struct {
		val  string
		set  bool
		want bool
	}{
		{set: false, want: true},
		{val: "on", set: true, want: true},
		{val: "off", set: true, want: false},
		{val: "no", set: true, want: false},
		{val: "0", set: true, want: false},
	} {
		t.Setenv(pushAheadVar, tc.val) // restored after the test
		if !tc.set {
			os.Unsetenv(pushAheadVar)
		}
		got, err := pushAheadEnabled()
		if err != nil || got != tc.want {
			t.Errorf("%s set=%v %q: got %v, %v; want %v", pushAheadVar, tc.set, tc.val, got, err, tc.want)
		}
	}
}
