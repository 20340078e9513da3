package check

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/wal"
)

const (
	backupDir      = "basebackups_005/"
	sentinelSuffix = "_backup_stop_sentinel.json"
	// sentinelLimit is far above any real sentinel, even walden's with a
	// hash per partition of a multi-terabyte cluster.
	sentinelLimit = 64 << 20
	// sentinelReaders bounds parallel sentinel reads on stores with many backups.
	sentinelReaders = 8
)

// Backup is one complete base backup: its sentinel exists.
type Backup struct {
	Name     string    `json:"name"`
	Walden   bool      `json:"walden"` // the sentinel has walden's own "walden" object
	Modified time.Time `json:"modified"`
}

// Maker is who wrote the backup, for the human report.
func (b Backup) Maker() string {
	if b.Walden {
		return "walden"
	}
	return "WAL-E"
}

// WALSummary is the WAL range in the store, per timeline.
type WALSummary struct {
	Segments     int        `json:"segments"`
	HistoryFiles int        `json:"history_files"`
	Timelines    []Timeline `json:"timelines"`
}

// Timeline is the archived segments of one timeline.
type Timeline struct {
	Timeline string `json:"timeline"`
	First    string `json:"first"`
	Last     string `json:"last"`
	Segments int    `json:"segments"`
}

type inventory struct {
	results []Result
	backups []Backup
	wal     *WALSummary
}

func takeInventory(ctx context.Context, st storage.Store, url string) inventory {
	var inv inventory
	objs, err := st.List(ctx, backupDir)
	if err != nil {
		inv.results = append(inv.results, fail("backups", "cannot list %s in %s: %v", backupDir, url, err))
	} else {
		backups, problems := readBackups(ctx, st, objs)
		inv.backups = backups
		if len(problems) > 0 {
			inv.results = append(inv.results, fail("backups", "%s", strings.Join(problems, "; ")))
		} else {
			inv.results = append(inv.results, pass("backups", "%s", describeBackups(backups)))
		}
	}
	objs, err = st.List(ctx, wal.Dir)
	if err != nil {
		inv.results = append(inv.results, fail("wal", "cannot list %s in %s: %v", wal.Dir, url, err))
	} else {
		inv.wal = SummarizeWAL(objs)
		inv.results = append(inv.results, pass("wal", "%s", inv.wal.describe()))
	}
	return inv
}

// SentinelBackups picks the complete backups out of a basebackups_005/
// listing: the sentinels beside the backup directories, never files inside
// them.
func SentinelBackups(objs []storage.Object) []Backup {
	var out []Backup
	for _, o := range objs {
		rest, ok := strings.CutPrefix(o.Key, backupDir)
		if !ok || strings.Contains(rest, "/") || !strings.HasSuffix(rest, sentinelSuffix) {
			continue
		}
		name := strings.TrimSuffix(rest, sentinelSuffix)
		if name == "" {
			continue
		}
		out = append(out, Backup{Name: name, Modified: o.Modified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// IsWaldenSentinel tells walden's sentinels from WAL-E's by walden's own
// top-level object; key order and other keys do not matter.
func IsWaldenSentinel(data []byte) (bool, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return false, err
	}
	_, ok := m["walden"]
	return ok, nil
}

func readBackups(ctx context.Context, st storage.Store, objs []storage.Object) ([]Backup, []string) {
	backups := SentinelBackups(objs)
	if backups == nil {
		backups = []Backup{}
	}
	problems := make([]string, len(backups))
	sem := make(chan struct{}, sentinelReaders)
	var wg sync.WaitGroup
	for i := range backups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			b := &backups[i]
			data, err := readAll(ctx, st, backupDir+b.Name+sentinelSuffix, sentinelLimit)
			if err == nil {
				b.Walden, err = IsWaldenSentinel(data)
			}
			if err != nil {
				problems[i] = fmt.Sprintf("the sentinel of %s is unreadable: %v", b.Name, err)
			}
		}()
	}
	wg.Wait()
	var out []string
	for _, p := range problems {
		if p != "" {
			out = append(out, p)
		}
	}
	return backups, out
}

func describeBackups(bs []Backup) string {
	if len(bs) == 0 {
		return "none found"
	}
	n := 0
	for _, b := range bs {
		if b.Walden {
			n++
		}
	}
	return fmt.Sprintf("%d found (%d by walden, %d by WAL-E), newest %s", len(bs), n, len(bs)-n, newest(bs).Name)
}

// newest is the backup whose sentinel was written last, WAL-E's LATEST.
func newest(bs []Backup) Backup {
	best := bs[0]
	for _, b := range bs[1:] {
		if b.Modified.After(best.Modified) {
			best = b
		}
	}
	return best
}

// isCodecExt reports whether ext (after the first dot, "" for none) is
// only a compression extension, as on a plain segment object.
func isCodecExt(ext string) bool {
	if ext == "" {
		return true
	}
	for _, c := range codec.All {
		if c.Ext() == "."+ext {
			return true
		}
	}
	return false
}

// SummarizeWAL reduces a wal_005/ listing to the first and last segment and
// the segment count of each timeline. Object names keep their codec
// extension, so the name is cut at the first dot; .backup, .partial and
// other files are not segments.
func SummarizeWAL(objs []storage.Object) *WALSummary {
	s := &WALSummary{Timelines: []Timeline{}}
	byTLI := map[string]*Timeline{}
	for _, o := range objs {
		rest, ok := strings.CutPrefix(o.Key, wal.Dir)
		if !ok || strings.Contains(rest, "/") {
			continue
		}
		stem, ext, _ := strings.Cut(rest, ".")
		if strings.HasPrefix(ext, "history") && wal.Classify(stem+".history") == wal.KindHistory {
			s.HistoryFiles++
			continue
		}
		if wal.Classify(stem) != wal.KindSegment || !isCodecExt(ext) {
			continue
		}
		s.Segments++
		tli := stem[:8]
		t := byTLI[tli]
		if t == nil {
			t = &Timeline{Timeline: tli, First: stem, Last: stem}
			byTLI[tli] = t
		}
		t.Segments++
		// Fixed-width upper-case hex: string order is segment order.
		if stem < t.First {
			t.First = stem
		}
		if stem > t.Last {
			t.Last = stem
		}
	}
	for _, t := range byTLI {
		s.Timelines = append(s.Timelines, *t)
	}
	sort.Slice(s.Timelines, func(i, j int) bool { return s.Timelines[i].Timeline < s.Timelines[j].Timeline })
	return s
}

func (s *WALSummary) describe() string {
	if s.Segments == 0 {
		return fmt.Sprintf("no segments found, %s", plural(s.HistoryFiles, "history file"))
	}
	last := s.Timelines[len(s.Timelines)-1]
	return fmt.Sprintf("%s on %s (%s), newest %s", plural(s.Segments, "segment"), plural(len(s.Timelines), "timeline"),
		plural(s.HistoryFiles, "history file"), last.Last)
}
