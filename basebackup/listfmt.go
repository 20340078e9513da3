package basebackup

import (
	"context"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/walden-pg/walden/storage"
)

// ListHeader is backup-list's first row.
var ListHeader = []string{"name", "last_modified", "expanded_size_bytes", "wal_segment_backup_start",
	"wal_segment_offset_backup_start", "wal_segment_backup_stop", "wal_segment_offset_backup_stop"}

// Row is one backup-list row; the stop and size columns are empty unless
// the sentinel was loaded (--detail).
func Row(scheme string, b Backup) []string {
	seg, off, _ := StartSegment(b.Name)
	r := []string{b.Name, FormatModified(scheme, b.Modified), "", seg, off, "", ""}
	if s := b.Sentinel; s != nil {
		r[2] = strconv.FormatInt(s.ExpandedSizeBytes, 10)
		r[5], r[6] = s.StopSegment, s.StopOffset
	}
	return r
}

// FormatModified renders a sentinel's last-modified time the way WAL-E
// printed what each backend's client library returned (scripts parse it).
func FormatModified(scheme string, t time.Time) string {
	t = t.UTC()
	switch scheme {
	case "s3": // boto: ISO 8601 with milliseconds and Z
		return t.Format("2006-01-02T15:04:05.000Z")
	case "gs": // str(datetime) with a UTC zone
		return pyDatetime(t, " ") + "+00:00"
	}
	// file: datetime.isoformat() of the UTC mtime, without zone
	return pyDatetime(t, "T")
}

// pyDatetime is Python's datetime text: microseconds only when non-zero.
func pyDatetime(t time.Time, sep string) string {
	s := t.Format("2006-01-02" + sep + "15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		s += "." + strconv.Itoa(1000000 + us)[1:]
	}
	return s
}

// WriteTSV writes rows in Python csv's excel-tab dialect: TAB separators,
// CRLF line ends, quotes only around fields that need them.
func WriteTSV(w io.Writer, rows [][]string) error {
	var b strings.Builder
	for _, r := range rows {
		for i, f := range r {
			if i > 0 {
				b.WriteByte('\t')
			}
			if strings.ContainsAny(f, "\t\"\r\n") {
				f = `"` + strings.ReplaceAll(f, `"`, `""`) + `"`
			}
			b.WriteString(f)
		}
		b.WriteString("\r\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ListRows builds backup-list's output for a query ("" = all). Every
// backup is checked (sentinel readable as JSON, partitions present); a
// broken one keeps its row, in WAL-E's columns, with the size and stop
// columns empty even with detail, and is reported through broken. LATEST
// skips broken backups. ok is false for an invalid query, in which case
// rows holds only the header, which WAL-E printed before failing.
func ListRows(ctx context.Context, st storage.Store, scheme, query string, detail bool, broken func(name, why string)) (rows [][]string, ok bool, err error) {
	rows = [][]string{ListHeader}
	all, err := List(ctx, st)
	if err != nil {
		return rows, true, err
	}
	bs := all
	switch {
	case query == "LATEST":
		b, found, err := LatestUsable(ctx, st, all)
		if err != nil {
			return rows, true, err
		}
		bs = nil
		if found {
			bs = []Backup{b}
		}
	case query != "":
		var valid bool
		if bs, valid = Query(all, query); !valid {
			return rows, false, nil
		}
	}
	var parents []string
	hasDelta := false
	for i := range bs {
		parents = append(parents, "")
		hasDelta = hasDelta || bs[i].IsDelta
		if err := bs[i].Check(ctx, st); err != nil && bs[i].Broken == "" {
			return rows, true, err
		}
		if bs[i].IsDelta && bs[i].Broken == "" {
			for j := range all {
				if all[j].SentinelKey != bs[i].SentinelKey {
					continue
				}
				if err := CheckChain(ctx, st, all, j); err != nil && all[j].Broken == "" {
					return rows, true, err
				}
				bs[i].Broken = all[j].Broken
			}
		}
		if bs[i].Broken != "" {
			if broken != nil {
				broken(bs[i].Name, bs[i].Broken)
			}
			b := bs[i]
			b.Sentinel = nil
			rows = append(rows, Row(scheme, b))
			continue
		}
		b := bs[i]
		if !detail {
			b.Sentinel = nil // WAL-E filled these columns only with --detail
		}
		if m := bs[i].Sentinel.Walden; m != nil && m.Delta != nil {
			parents[len(rows)-1] = m.Delta.Parent
		}
		rows = append(rows, Row(scheme, b))
	}
	// With --detail, a store holding deltas gets one more column, after
	// WAL-E's: the backup a delta builds on. Without deltas, and without
	// --detail, the output is WAL-E's.
	if detail && hasDelta {
		rows[0] = append(append([]string(nil), rows[0]...), "parent")
		for i := 1; i < len(rows); i++ {
			rows[i] = append(rows[i], parents[i-1])
		}
	}
	return rows, true, nil
}
