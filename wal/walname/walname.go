// Package walname classifies WAL file names as PostgreSQL hands them to
// archive_command and restore_command. It imports nothing heavy, so the
// front program can check a name without linking the archive code.
package walname

import "regexp"

var (
	segmentRe = regexp.MustCompile(`^[0-9A-F]{24}$`)
	historyRe = regexp.MustCompile(`^[0-9A-F]{8}\.history$`)
	backupRe  = regexp.MustCompile(`^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$`)
	partialRe = regexp.MustCompile(`^[0-9A-F]{24}\.partial$`)
)

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
	case segmentRe.MatchString(name):
		return KindSegment
	case historyRe.MatchString(name):
		return KindHistory
	case backupRe.MatchString(name):
		return KindBackup
	case partialRe.MatchString(name):
		return KindPartial
	}
	return KindOther
}

// IsSegment reports whether name is a plain 24-hex-digit segment name.
func IsSegment(name string) bool { return segmentRe.MatchString(name) }
