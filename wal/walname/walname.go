// Package walname classifies WAL file names as PostgreSQL hands them to
// archive_command and restore_command. It imports nothing heavy, so the
// front program can check a name without linking the archive code.
package walname

import "strings"

// Checked by hand rather than with regular expressions: compiling them is
// a measurable part of the front program's start-up.

// upperHex reports whether s is n upper-case hexadecimal digits.
func upperHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Kind is what a WAL file name names.
type Kind int

const (
	KindOther Kind = iota
	KindSegment
	KindHistory
	KindBackup
	KindPartial
)

// Classify tells what kind of WAL file name is.
func Classify(name string) Kind {
	switch {
	case upperHex(name, 24):
		return KindSegment
	case len(name) == 16 && upperHex(name[:8], 8) && name[8:] == ".history":
		return KindHistory
	case len(name) == 40 && upperHex(name[:24], 24) && name[24] == '.' && upperHex(name[25:33], 8) && name[33:] == ".backup":
		return KindBackup
	case len(name) == 32 && upperHex(name[:24], 24) && strings.HasSuffix(name, ".partial"):
		return KindPartial
	}
	return KindOther
}

// IsSegment reports whether name is a plain 24-hex-digit segment name.
func IsSegment(name string) bool { return upperHex(name, 24) }
