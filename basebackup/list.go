package basebackup

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// Backup is one complete backup: its sentinel exists.
type Backup struct {
	Name        string
	SentinelKey string
	Modified    time.Time // the sentinel object's last-modified time
	Sentinel    *Sentinel // nil until Load
}

// List returns the complete backups in storage listing order. A backup is
// complete iff a sentinel sits directly in basebackups_005/ (WAL-E 3.6).
func List(ctx context.Context, st storage.Store) ([]Backup, error) {
	objs, err := st.List(ctx, Dir)
	if err != nil {
		return nil, err
	}
	var out []Backup
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, Dir)
		if strings.Contains(rest, "/") || !sentinelRe.MatchString(rest) {
			continue
		}
		out = append(out, Backup{Name: rest[:nameLen], SentinelKey: o.Key, Modified: o.Modified})
	}
	return out, nil
}

// Latest is WAL-E's LATEST: the backup whose sentinel was modified last;
// on a tie the later one in listing order wins.
func Latest(bs []Backup) (Backup, bool) {
	best := -1
	for i, b := range bs {
		if best < 0 || !b.Modified.Before(bs[best].Modified) {
			best = i
		}
	}
	if best < 0 {
		return Backup{}, false
	}
	return bs[best], true
}

// Query selects backups as WAL-E's backup-list QUERY and backup-fetch NAME
// do: LATEST, or an exact name. ok is false for a query that is neither.
func Query(bs []Backup, q string) (out []Backup, ok bool) {
	if q == "LATEST" {
		if b, found := Latest(bs); found {
			return []Backup{b}, true
		}
		return nil, true
	}
	if !IsName(q) {
		return nil, false
	}
	for _, b := range bs {
		if b.Name == q {
			out = append(out, b)
		}
	}
	return out, true
}

// Load reads the backup's sentinel.
func (b *Backup) Load(ctx context.Context, st storage.Store) error {
	if b.Sentinel != nil {
		return nil
	}
	rc, err := st.Get(ctx, b.SentinelKey)
	if err != nil {
		return fmt.Errorf("read sentinel of %s: %w", b.Name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return fmt.Errorf("read sentinel of %s: %w", b.Name, err)
	}
	s, err := ParseSentinel(data)
	if err != nil {
		return fmt.Errorf("%s: %w", b.Name, err)
	}
	b.Sentinel = s
	return nil
}

// Resolve finds the one backup that name (a backup name or LATEST) means,
// with WAL-E's errors when there is none or more than one.
func Resolve(ctx context.Context, st storage.Store, name string) (Backup, error) {
	bs, err := List(ctx, st)
	if err != nil {
		return Backup{}, err
	}
	found, _ := Query(bs, name)
	switch len(found) {
	case 0:
		return Backup{}, &walelog.UserError{
			Msg:    "no backups found for fetching",
			Detail: fmt.Sprintf("No backup matching the query %s was able to be located.", name),
		}
	case 1:
		return found[0], nil
	}
	return Backup{}, &walelog.UserError{
		Msg:    "more than one backup found for fetching",
		Detail: fmt.Sprintf("More than one backup matching the query %s was able to be located.", name),
		Hint:   `To list qualifying backups, try "wal-e backup-list QUERY".`,
	}
}
