package basebackup

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/walden-pg/walden/walelog"
)

// RetainPolicy is WALDEN_RETAIN: keep Count newest backups, or every
// backup that finished within Age of Now plus the newest one older than
// that (so any moment in the window stays restorable). The newest backup is
// always kept.
type RetainPolicy struct {
	Count int
	Age   time.Duration
	Now   time.Time
}

// RetainResult says what a retention run kept and removed.
type RetainResult struct {
	Kept    []string // backup names, newest first
	Deleted []string // complete backups removed (or that a dry run would remove)
	Horizon string   // the oldest kept backup: everything older went
}

// Retain applies a policy: it picks the backups to keep, then deletes, as
// delete before would, every backup and WAL file older than the oldest one
// kept. The WAL the oldest kept backup needs, and everything newer, stays;
// timeline history files always stay.
func Retain(ctx context.Context, o DeleteOptions, p RetainPolicy) (RetainResult, error) {
	var res RetainResult
	if p.Count < 1 && p.Age <= 0 {
		return res, fmt.Errorf("retention policy keeps nothing: give a count of at least 1 or an age")
	}
	bs, err := List(ctx, o.Store)
	if err != nil {
		return res, err
	}
	if len(bs) == 0 {
		return res, nil
	}
	kept := keepSet(ctx, o, bs, p)
	h := nameNumber(kept[0].Name)
	oldest := kept[0]
	for _, b := range kept {
		if n := nameNumber(b.Name); n < h {
			h, oldest = n, b
		}
	}
	// A kept delta needs its whole chain: the backups it builds on stay,
	// and so does the WAL from the oldest of them on, so that every kept
	// backup is restorable by itself.
	if f, fb, ok := chainFloor(bs, kept); ok && f < h {
		h, oldest = f, fb
		o.Log.Info(walelog.Base, "keeping the backups that kept delta backups build on",
			fmt.Sprintf("The oldest of them is %s.", fb.Name), "")
	}
	for _, b := range kept {
		res.Kept = append(res.Kept, b.Name)
	}
	for _, b := range bs {
		if nameNumber(b.Name) < h {
			res.Deleted = append(res.Deleted, b.Name)
		} else if !slices.Contains(res.Kept, b.Name) {
			res.Kept = append(res.Kept, b.Name) // an ancestor of a kept delta
		}
	}
	res.Horizon = oldest.Name
	o.Log.Info(walelog.Base, fmt.Sprintf("Retaining %d of %d base backups.", len(res.Kept), len(bs)),
		fmt.Sprintf("Policy: %s.", p), "Deleting keys older than "+o.Prefix.URL(oldest.SentinelKey)+".")
	walH := h
	for _, b := range bs {
		if nameNumber(b.Name) < h {
			continue
		}
		if unreliableName(ctx, o, b) {
			// The name of a WAL-E --while-offline backup is not its start
			// position (it can be far too high), so no WAL is safe to
			// delete by it: old backups go, WAL stays.
			walH = 0
			o.Log.Warn(walelog.Base, "keeping all WAL: a kept backup's name does not tell where its WAL starts",
				fmt.Sprintf("Backup %s looks like a WAL-E --while-offline backup.", b.Name), "")
			break
		}
	}
	return res, o.beforeSplit(ctx, h, walH)
}

// unreliableName reports a WAL-E backup whose name may not be its start:
// WAL-E named offline backups with the same two characters as segment and
// offset (base_…0000NN_000000NN); walden's sentinels carry the real LSN.
func unreliableName(ctx context.Context, o DeleteOptions, b Backup) bool {
	if b.Sentinel == nil {
		_ = b.Load(ctx, o.Store)
	}
	if b.Sentinel != nil && (b.Sentinel.Walden != nil || b.Sentinel.LSN != nil) {
		return false
	}
	seg, off := b.Name[len("base_")+16:len("base_")+24], b.Name[len("base_")+25:]
	return seg == off
}

func (p RetainPolicy) String() string {
	if p.Count > 0 {
		return fmt.Sprintf("keep the %d newest backups", p.Count)
	}
	return fmt.Sprintf("keep backups finished within %s", p.Age)
}

// keepSet returns the backups the policy keeps, newest first.
func keepSet(ctx context.Context, o DeleteOptions, bs []Backup, p RetainPolicy) []Backup {
	sorted := append([]Backup(nil), bs...)
	if p.Count > 0 {
		sort.SliceStable(sorted, func(i, j int) bool { return nameNumber(sorted[i].Name) > nameNumber(sorted[j].Name) })
		return sorted[:min(p.Count, len(sorted))]
	}
	for i := range sorted {
		_ = sorted[i].Load(ctx, o.Store) // unreadable: fall back to the sentinel's time
	}
	sort.SliceStable(sorted, func(i, j int) bool { return BackupTime(sorted[i]).After(BackupTime(sorted[j])) })
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	cut := now.Add(-p.Age)
	var out []Backup
	for i, b := range sorted {
		out = append(out, b)
		if BackupTime(b).Before(cut) || i == len(sorted)-1 {
			break // the newest backup older than the window is the last one kept
		}
	}
	return out
}

// chainFloor follows the parent links of the kept deltas, by name (a
// delta's name carries its parent's start, so no sentinel need be read),
// and returns the start number of the oldest backup they need, with that
// backup (or, if it is missing, the oldest kept one).
func chainFloor(bs, kept []Backup) (uint64, Backup, bool) {
	byStart := map[string][]Backup{}
	for _, b := range bs {
		byStart[b.Name[:nameLen]] = append(byStart[b.Name[:nameLen]], b)
	}
	var floor uint64
	var fb Backup
	found := false
	for _, b := range kept {
		seen := map[string]bool{}
		cur := []Backup{b}
		for len(cur) > 0 {
			var next []Backup
			for _, c := range cur {
				_, ps, ok := ParseDeltaName(c.Name)
				if !ok || seen[ps] {
					continue
				}
				seen[ps] = true
				n := nameNumber(ps)
				cands := byStart[ps]
				if !found || n < floor {
					floor, found = n, true
					fb = c
					if len(cands) > 0 {
						fb = cands[0]
					}
				}
				next = append(next, cands...)
			}
			cur = next
		}
	}
	return floor, fb, found
}

// BackupTime is when a backup finished: the sentinel's FinishTime when it
// records one, else when the sentinel was written (WAL-E's backups).
func BackupTime(b Backup) time.Time {
	if t, ok := b.Sentinel.Finished(); ok {
		return t
	}
	return b.Modified
}
