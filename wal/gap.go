package wal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// DefaultGapGrace is how long a later segment must have been in the store
// before a missing earlier one counts as a gap: wal-push uploads a pool of
// segments at once, so for a moment a later one can land before its
// predecessor, and a standby asking just then must only wait.
const DefaultGapGrace = time.Minute

// GapError means the archive lacks a segment although it holds a later
// one of the same timeline, after the timeline began: the WAL does not end
// there, it is broken, and replaying "to the end" would silently lose
// everything after the hole.
type GapError struct {
	Name  string // the missing segment
	Later string // a later segment of the same timeline the store holds
}

func (e *GapError) Error() string {
	return fmt.Sprintf("WAL segment %s is missing from the archive, which holds the later segment %s of the same timeline: the archive has a gap, recovery cannot go on past it", e.Name, e.Later)
}

// checkGap returns a GapError when the absent segment name is a hole in
// its timeline rather than the end of the WAL. Only the log id of name and
// the next one are listed, which keeps the cost bounded on large archives.
// A segment before its timeline's start (PostgreSQL probes those names; they
// exist only on the parent timeline) is never a gap.
func (a *Archive) checkGap(ctx context.Context, name string) error {
	seg, err := ParseSegment(name)
	if err != nil {
		return nil
	}
	lists, err := a.gapLists(ctx, seg)
	if err != nil {
		return fmt.Errorf("wal-fetch %s: looking for later segments: %w", name, err)
	}
	return a.judgeGap(ctx, name, seg, lists)
}

// gapLists lists, at once, the stored WAL of seg's log id and of the next
// one: what judgeGap needs, and (the first) every copy of seg itself.
func (a *Archive) gapLists(ctx context.Context, seg Segment) ([2][]storage.Object, error) {
	var lists [2][]storage.Object
	var errs [2]error
	var wg sync.WaitGroup
	for i, logID := range []uint32{seg.Log, seg.Log + 1} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lists[i], errs[i] = a.Store.List(ctx, Dir+fmt.Sprintf("%08X%08X", seg.TLI, logID))
		}()
	}
	wg.Wait()
	return lists, errors.Join(errs[0], errs[1])
}

// judgeGap is checkGap on the listings of gapLists.
func (a *Archive) judgeGap(ctx context.Context, name string, seg Segment, lists [2][]storage.Object) error {
	var later []storage.Object
	var laterSegs []Segment
	first, haveFirst := Segment{}, false
	for _, objs := range lists {
		for _, o := range objs {
			s, ok := storedSegment(o.Key)
			if !ok || s.TLI != seg.TLI {
				continue
			}
			if !haveFirst || s.Number() < first.Number() {
				first, haveFirst = s, true
			}
			if s.Number() > seg.Number() {
				later, laterSegs = append(later, o), append(laterSegs, s)
			}
		}
	}
	if len(later) == 0 {
		return nil
	}
	// Between two stored segments of the timeline: past its start for sure.
	inside := haveFirst && first.Number() < seg.Number()
	if !inside {
		begin, known, err := a.timelineBegin(ctx, seg.TLI)
		if err != nil {
			return fmt.Errorf("wal-fetch %s: %w", name, err)
		}
		if !known {
			return nil
		}
		switch beginLog := uint32(begin >> 32); {
		case begin == 0 || seg.Log > beginLog:
			inside = true
		case seg.Log < beginLog:
			inside = false
		default:
			size := a.segSizeOf(ctx, later[0].Key)
			inside = seg.StartLSN(size)+uint64(size) > begin
		}
	}
	if !inside {
		return nil
	}
	for i, o := range later {
		if o.Modified.IsZero() || time.Since(o.Modified) >= a.gapGrace() {
			return &GapError{Name: name, Later: laterSegs[i].String()}
		}
	}
	a.Log.Warn(walelog.Backup, "WAL segment not yet in the archive although a later one is",
		fmt.Sprintf("%s is absent while %s was stored %s ago; taken as not yet archived.", name, laterSegs[0], time.Since(later[0].Modified).Round(time.Second)),
		"If it does not appear, the archive has a gap.")
	return nil
}

// storedSegment parses a WAL object key holding a plain segment.
func storedSegment(key string) (Segment, bool) {
	b := strings.TrimPrefix(key, Dir)
	if len(b) < 24 {
		return Segment{}, false
	}
	s, err := ParseSegment(b[:24])
	if err != nil {
		return Segment{}, false
	}
	if rest := b[24:]; rest != "" {
		ok := false
		for _, c := range codec.All {
			if c.Ext() == rest {
				ok = true
			}
		}
		if !ok {
			return Segment{}, false
		}
	}
	return s, true
}

// timelineBegin returns where timeline tli begins: 0 for the first, else
// the switch point on the last line of its history file. known is false
// when the store holds no readable history file for it.
func (a *Archive) timelineBegin(ctx context.Context, tli uint32) (begin uint64, known bool, err error) {
	if tli <= 1 {
		return 0, true, nil
	}
	key, found, err := a.locate(ctx, fmt.Sprintf("%08X.history", tli))
	if err != nil || !found {
		return 0, false, err
	}
	rc, err := a.Store.Get(ctx, key)
	if err != nil {
		if isNotFound(err) {
			return 0, false, nil
		}
		return 0, false, err
	}
	defer rc.Close()
	dec, err := blob.NewReader(key, rc, a.Crypt)
	if err != nil {
		return 0, false, nil
	}
	defer dec.Close()
	sc := bufio.NewScanner(io.LimitReader(dec, 1<<20))
	for sc.Scan() {
		// "parentTLI<tab>X/Y<tab>reason"; the last entry is where this timeline forked.
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if lsn, ok := parseLSN(f[1]); ok {
			begin, known = lsn, true
		}
	}
	return begin, known, nil
}

func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | l, true
}

// segSizeOf reads the segment size from the page header of a stored
// segment; PostgreSQL's default when it cannot be read.
func (a *Archive) segSizeOf(ctx context.Context, key string) uint32 {
	const fallback = 16 << 20
	rc, err := a.Store.Get(ctx, key)
	if err != nil {
		return fallback
	}
	defer rc.Close()
	dec, err := blob.NewReader(key, rc, a.Crypt)
	if err != nil {
		return fallback
	}
	defer dec.Close()
	var b [LongHeaderSize]byte
	if _, err := io.ReadFull(dec, b[:]); err != nil {
		return fallback
	}
	h, _ := ParseSegmentHeader(b[:])
	if !validSegSize(h.SegSize) {
		return fallback
	}
	return h.SegSize
}
