package walname

import "testing"

func TestClassifyTellsEveryKindAndRefusesNearMisses(t *testing.T) {
	for name, want := range map[string]Kind{
		"000000010000000000000001":                  KindSegment,
		"0000000A000000FF000000EE":                  KindSegment,
		"00000002.history":                          KindHistory,
		"000000010000000000000001.00000028.backup":  KindBackup,
		"000000010000000000000001.partial":          KindPartial,
		"00000001000000000000000":                   KindOther, // 23 digits
		"0000000100000000000000001":                 KindOther, // 25 digits
		"00000001000000000000000a":                  KindOther, // lower case
		"0000000G0000000000000001":                  KindOther,
		"00000002.histor":                           KindOther,
		"0000002.history":                           KindOther,
		"000000010000000000000001.0000028.backup":   KindOther,
		"000000010000000000000001.00000028.backupx": KindOther,
		"000000010000000000000001.partia":           KindOther,
		"000000010000000000000001X00000028.backup":  KindOther,
		"":                 KindOther,
		"../../etc/passwd": KindOther,
	} {
		if got := Classify(name); got != want {
			t.Errorf("Classify(%q) = %d, want %d", name, got, want)
		}
	}
}
