package basebackup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// WALDir is the store directory holding archived WAL.
const WALDir = "wal_005/"

// noTargetReason is what PostgreSQL writes into the new timeline's history
// file when recovery ended because the WAL ran out rather than at a target.
const noTargetReason = "no recovery target specified"

// segNo is a segment's number counted from the start of WAL (XLogSegNo).
func segNo(log, seg uint64, segSize uint64) uint64 {
	return log*(0x100000000/segSize) + seg
}

// segName is the file name of segment n on timeline tli.
func segName(tli uint32, n, segSize uint64) string {
	perID := uint64(0x100000000) / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, n/perID, n%perID)
}

// parseSegKey reads "wal_005/TTTTTTTTLLLLLLLLSSSSSSSS.ext": timeline and
// segment number; ok is false for history files, .partial and the like.
func parseSegKey(key string, segSize uint64) (tli uint32, n uint64, ok bool) {
	base := strings.TrimPrefix(key, WALDir)
	if len(base) < 24 || strings.Contains(base[:24], "/") {
		return 0, 0, false
	}
	rest := base[24:]
	if rest != "" && rest[0] != '.' || strings.Contains(rest, ".partial") || strings.Contains(rest, ".backup") {
		return 0, 0, false
	}
	t, err1 := strconv.ParseUint(base[0:8], 16, 32)
	l, err2 := strconv.ParseUint(base[8:16], 16, 32)
	s, err3 := strconv.ParseUint(base[16:24], 16, 32)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return uint32(t), segNo(l, s, segSize), true
}

// archivedSegments lists the segment numbers the store holds on timeline tli.
func archivedSegments(ctx context.Context, st storage.Store, tli uint32, segSize uint64) (map[uint64]bool, error) {
	objs, err := st.List(ctx, WALDir+fmt.Sprintf("%08X", tli))
	if err != nil {
		return nil, err
	}
	out := map[uint64]bool{}
	for _, o := range objs {
		if t, n, ok := parseSegKey(o.Key, segSize); ok && t == tli {
			out[n] = true
		}
	}
	return out, nil
}

// SwitchPoint is the last line of a timeline history file: recovery left
// timeline Parent at LSN End, for Reason.
type SwitchPoint struct {
	Parent uint32
	End    LSN
	Reason string
}

// ReadSwitchPoint reads the history file of timeline tli in pgdata/pg_wal.
func ReadSwitchPoint(pgdata string, tli uint32) (SwitchPoint, error) {
	p := filepath.Join(pgdata, "pg_wal", fmt.Sprintf("%08X.history", tli))
	b, err := os.ReadFile(p)
	if err != nil {
		return SwitchPoint{}, err
	}
	var last string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			last = l
		}
	}
	f := strings.SplitN(last, "\t", 3)
	if len(f) < 2 {
		return SwitchPoint{}, fmt.Errorf("%s: no switch point in %q", p, last)
	}
	parent, err := strconv.ParseUint(strings.TrimSpace(f[0]), 10, 32)
	if err != nil {
		return SwitchPoint{}, fmt.Errorf("%s: bad timeline in %q", p, last)
	}
	end, err := ParseLSN(f[1])
	if err != nil {
		return SwitchPoint{}, fmt.Errorf("%s: %v", p, err)
	}
	sp := SwitchPoint{Parent: uint32(parent), End: end}
	if len(f) == 3 {
		sp.Reason = strings.TrimSpace(f[2])
	}
	return sp, nil
}

// CheckReplayReachedArchiveEnd fails when recovery ended (without reaching
// a target) while the store still holds WAL of the recovered timeline
// beyond that point: PostgreSQL treats a missing or unreadable segment as
// the end of WAL and promotes there, silently dropping everything after.
// The error names the first segment replay could not use.
func CheckReplayReachedArchiveEnd(ctx context.Context, st storage.Store, sp SwitchPoint, segSize uint64) error {
	if sp.Reason != "" && sp.Reason != noTargetReason {
		return nil // stopped at the recovery target the operator asked for
	}
	if segSize == 0 {
		segSize = DefaultSegmentSize
	}
	have, err := archivedSegments(ctx, st, sp.Parent, segSize)
	if err != nil {
		return fmt.Errorf("listing the archive to check where replay ended: %w", err)
	}
	k0 := uint64(sp.End) / segSize // the segment holding the switch point
	midSegment := uint64(sp.End)%segSize != 0
	var beyond []uint64
	for n := range have {
		if n*segSize >= uint64(sp.End) {
			beyond = append(beyond, n)
		}
	}
	if len(beyond) == 0 {
		return nil
	}
	sort.Slice(beyond, func(i, j int) bool { return beyond[i] < beyond[j] })
	last := segName(sp.Parent, beyond[len(beyond)-1], segSize)
	var first, what string
	switch {
	case !have[k0]:
		first, what = segName(sp.Parent, k0, segSize), "is missing from the archive"
	case midSegment && !have[k0+1]:
		first, what = segName(sp.Parent, k0+1, segSize), "is missing from the archive"
	case midSegment:
		first, what = segName(sp.Parent, k0, segSize), fmt.Sprintf("(or the next one) could not be read past %s", sp.End)
	default:
		first, what = segName(sp.Parent, k0, segSize), "could not be read"
	}
	return &walelog.UserError{
		Msg: fmt.Sprintf("WAL segment %s %s: replay stopped early", first, what),
		Detail: fmt.Sprintf("Recovery ended at %s on timeline %d, but the archive holds WAL of that timeline up to %s (%d segment(s) beyond where replay ended); the restored server lacks every transaction after %s.",
			sp.End, sp.Parent, last, len(beyond), sp.End),
		Hint: "Restore the missing or damaged segment into the archive and run the restore again, or give an explicit --target-lsn/--target-time before the damage to accept the loss.",
	}
}
