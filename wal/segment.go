// Package wal archives and restores WAL files: wal-push, wal-fetch and
// WAL-E's prefetch protocol under <pg_wal>/.wal-e/prefetch/.
package wal

import (
	"fmt"
	"strconv"

	"github.com/walden-pg/walden/wal/walname"
)

// Dir is the store directory holding WAL objects.
const Dir = "wal_005/"

// Segment is a WAL segment name split into timeline, log and segment numbers.
type Segment struct {
	TLI, Log, Seg uint32
}

// ParseSegment parses a 24-hex-digit segment name.
func ParseSegment(name string) (Segment, error) {
	if !walname.IsSegment(name) {
		return Segment{}, fmt.Errorf("%q is not a WAL segment name (24 upper-case hex digits)", name)
	}
	p := func(s string) uint32 { v, _ := strconv.ParseUint(s, 16, 32); return uint32(v) }
	return Segment{p(name[0:8]), p(name[8:16]), p(name[16:24])}, nil
}

func (s Segment) String() string { return fmt.Sprintf("%08X%08X%08X", s.TLI, s.Log, s.Seg) }

// segsPerLog is the number of 16 MiB segments in one 4 GiB log id, the
// segment size WAL-E assumes.
const segsPerLog = 0x100

// Next is the following segment on the same timeline.
func (s Segment) Next() Segment {
	if s.Seg+1 >= segsPerLog {
		return Segment{s.TLI, s.Log + 1, 0}
	}
	return Segment{s.TLI, s.Log, s.Seg + 1}
}

// Number is WAL-E's timeline-blind position int(log ‖ seg, 16).
func (s Segment) Number() uint64 { return uint64(s.Log)<<32 | uint64(s.Seg) }

// Kind classifies a WAL file name as PostgreSQL hands it to archive_command.
type Kind = walname.Kind

const (
	KindOther   = walname.KindOther
	KindSegment = walname.KindSegment
	KindHistory = walname.KindHistory
	KindBackup  = walname.KindBackup
	KindPartial = walname.KindPartial
)

// Classify tells what kind of WAL file name is.
func Classify(name string) Kind { return walname.Classify(name) }

// Future returns the n segments after name, or nil when name is not a plain segment.
func Future(name string, n int) []string {
	s, err := ParseSegment(name)
	if err != nil {
		return nil
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		s = s.Next()
		out = append(out, s.String())
	}
	return out
}
