package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Problem is one thing wrong, named by the object it concerns.
type Problem struct {
	Object  string `json:"object"`
	Problem string `json:"problem"`
}

// Gap is a run of WAL segments missing from the archive.
type Gap struct {
	First string `json:"first"`
	Last  string `json:"last"`
	Count uint64 `json:"count"`
}

// BackupReport is the verdict on one backup.
type BackupReport struct {
	Name             string `json:"name"`
	Source           string `json:"source"` // walden or wal-e
	Timeline         uint32 `json:"timeline"`
	StartSegment     string `json:"start_segment"`
	StopSegment      string `json:"stop_segment"`
	SystemIdentifier string `json:"system_identifier,omitempty"`
	Major            int    `json:"postgresql_major,omitempty"`
	Partitions       int    `json:"partitions"`
	StoredBytes      int64  `json:"stored_bytes"`
	ExpandedBytes    int64  `json:"expanded_bytes"`
	// FilesOK: every partition is present and (unless quick) intact.
	FilesOK bool `json:"files_ok"`
	// Consistent: FilesOK and every WAL segment from start to stop is
	// present and valid, so a restore reaches consistency.
	Consistent bool `json:"restorable_to_consistency"`
	// NewestReachable is the last segment recovery can replay before the
	// first missing or invalid one; ReachableTime is when it was archived.
	NewestReachable string     `json:"newest_reachable_segment,omitempty"`
	ReachableTime   *time.Time `json:"newest_reachable_archived_at,omitempty"`
	// NewestArchived is the newest segment on the backup's timeline path.
	NewestArchived string    `json:"newest_archived_segment,omitempty"`
	Gaps           []Gap     `json:"gaps"`
	Problems       []Problem `json:"problems"`
	Note           string    `json:"note,omitempty"`

	// Chain lists, for a delta, the backups it builds on, the full one
	// first; their partitions count in FilesOK.
	Chain []string `json:"chain,omitempty"`

	// TimelinePath lists the timelines recovery follows, oldest first.
	TimelinePath []uint32 `json:"timeline_path"`
}

// Report is the whole result of a verify run.
type Report struct {
	OK              bool           `json:"ok"`
	Quick           bool           `json:"quick"`
	Backups         []BackupReport `json:"backups"`
	SegmentsChecked int            `json:"wal_segments_checked"`
	BytesRead       int64          `json:"bytes_read"`
	Seconds         float64        `json:"seconds"`
	Problems        []Problem      `json:"problems"`
	NoBackups       bool           `json:"no_backups,omitempty"`
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// WriteText writes a short summary per backup.
func (r *Report) WriteText(w io.Writer) error {
	if r.NoBackups {
		fmt.Fprintln(w, "no backups to verify")
	}
	for _, b := range r.Backups {
		files := "files OK"
		if !b.FilesOK {
			files = "files DAMAGED"
		} else if r.Quick {
			files = "files present (quick: not read)"
		}
		src := b.Source
		if len(b.Chain) > 0 {
			src += ", delta of " + strings.Join(b.Chain, " + ")
		}
		fmt.Fprintf(w, "%s (%s, timeline %d, WAL %s..%s): %s; ", b.Name, src, b.Timeline, orQ(b.StartSegment), orQ(b.StopSegment), files)
		switch {
		case b.StartSegment == "":
			fmt.Fprint(w, "WAL not checked")
		case b.Consistent:
			fmt.Fprint(w, "restorable to consistency")
		default:
			fmt.Fprint(w, "NOT restorable")
		}
		if b.NewestReachable != "" {
			fmt.Fprintf(w, "; point in time up to the end of %s", b.NewestReachable)
			if b.ReachableTime != nil {
				fmt.Fprintf(w, " (archived %s)", b.ReachableTime.UTC().Format(time.RFC3339))
			}
		}
		if len(b.Gaps) > 0 {
			fmt.Fprintf(w, "; %d gap(s), first missing %s", len(b.Gaps), b.Gaps[0].First)
		}
		if b.Note != "" {
			fmt.Fprintf(w, "; %s", b.Note)
		}
		fmt.Fprintln(w)
	}
	_, err := fmt.Fprintf(w, "verified %d backup(s) and %d WAL segment(s), %d bytes read in %.1fs: %d problem(s)\n",
		len(r.Backups), r.SegmentsChecked, r.BytesRead, r.Seconds, len(r.Problems))
	return err
}

func orQ(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// WriteProblems writes one line per problem.
func (r *Report) WriteProblems(w io.Writer, prefix string) {
	for _, p := range r.Problems {
		fmt.Fprintf(w, "%s%s: %s\n", prefix, p.Object, p.Problem)
	}
}

// problems collects problems once each, in a stable order.
type problems struct {
	seen map[Problem]bool
	list []Problem
}

func (p *problems) add(object, format string, a ...any) Problem {
	pr := Problem{Object: object, Problem: fmt.Sprintf(format, a...)}
	if p.seen == nil {
		p.seen = map[Problem]bool{}
	}
	if !p.seen[pr] {
		p.seen[pr] = true
		p.list = append(p.list, pr)
	}
	return pr
}

func (p *problems) sorted() []Problem {
	out := append([]Problem{}, p.list...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Object < out[j].Object })
	return out
}
