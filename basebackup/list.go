package basebackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
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
	partitions  []string  // names under tar_partitions/ seen by List
	listed      bool      // partitions is known (the Backup came from List)
	Broken      string    // why the backup cannot be restored, once Check found out
	// IsDelta is true for a delta backup (DELTA.md): its sentinel has
	// walden's own suffix, and restoring it needs its whole chain.
	IsDelta bool
	// sizes maps the objects in the backup's directory seen by List
	// (relative to it, e.g. "tar_partitions/part_00000000.tar.lz4") to
	// their stored sizes.
	sizes map[string]int64
	// sentinelSum is the SHA-256 of the sentinel as stored, once read.
	sentinelSum string
}

// List returns the complete backups in storage listing order. A backup is
// complete iff a sentinel sits directly in basebackups_005/ (WAL-E 3.6):
// WAL-E's sentinel for a full backup, walden's delta sentinel for a delta.
func List(ctx context.Context, st storage.Store) ([]Backup, error) {
	objs, err := st.List(ctx, Dir)
	if err != nil {
		return nil, err
	}
	var out []Backup
	parts := map[string][]string{}
	sizes := map[string]map[string]int64{}
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, Dir)
		if name, sub, ok := strings.Cut(rest, "/"); ok {
			if sizes[name] == nil {
				sizes[name] = map[string]int64{}
			}
			sizes[name][sub] = o.Size
		}
		if name, part, ok := strings.Cut(rest, "/tar_partitions/"); ok && !strings.Contains(part, "/") {
			parts[name] = append(parts[name], part)
		}
		if strings.Contains(rest, "/") {
			continue
		}
		if name, ok := strings.CutSuffix(rest, deltaSentinelSuffix); ok && IsDeltaName(name) {
			out = append(out, Backup{Name: name, SentinelKey: o.Key, Modified: o.Modified, IsDelta: true})
			continue
		}
		if !sentinelRe.MatchString(rest) {
			continue
		}
		out = append(out, Backup{Name: rest[:nameLen], SentinelKey: o.Key, Modified: o.Modified})
	}
	for i := range out {
		out[i].partitions, out[i].listed = parts[out[i].Name], true
		out[i].sizes = sizes[out[i].Name]
	}
	return out, nil
}

// Check reads the sentinel and compares the partitions it lists (walden's
// manifest; any at all for WAL-E's) with the store's listing. A backup
// whose sentinel is not valid JSON or whose partitions are missing is
// broken: Broken says why and Check returns it as an error. A failure to
// read is returned without marking the backup broken.
func (b *Backup) Check(ctx context.Context, st storage.Store) error {
	if b.Broken != "" {
		return errors.New(b.Broken)
	}
	if b.Sentinel == nil {
		rc, err := st.Get(ctx, b.SentinelKey)
		if err != nil {
			return fmt.Errorf("read sentinel of %s: %w", b.Name, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, 16<<20))
		rc.Close()
		if err != nil {
			return fmt.Errorf("read sentinel of %s: %w", b.Name, err)
		}
		s, err := ParseSentinel(data)
		if err != nil {
			b.Broken = "its sentinel is not valid: " + oneLine(err.Error())
			return errors.New(b.Broken)
		}
		b.Sentinel = s
		b.sentinelSum = sha256Hex(data)
	}
	if !b.listed {
		return nil
	}
	have := map[string]bool{}
	for _, p := range b.partitions {
		have[p] = true
	}
	if len(have) == 0 {
		b.Broken = "it has no partitions in the store"
		return errors.New(b.Broken)
	}
	if b.IsDelta {
		if why := b.deltaManifestProblem(); why != "" {
			b.Broken = why
			return errors.New(b.Broken)
		}
	}
	if m := b.Sentinel.Walden; m != nil {
		var missing []string
		for _, p := range m.Partitions {
			if !have[p.Name] {
				missing = append(missing, p.Name)
			}
		}
		if len(missing) > 0 {
			b.Broken = fmt.Sprintf("%d of its %d partitions are missing from the store (first %s)", len(missing), len(m.Partitions), missing[0])
			return errors.New(b.Broken)
		}
	}
	return nil
}

// LatestUsable is LATEST among the backups that pass Check: broken ones
// are skipped (and keep their Broken reason), so a damaged newest backup
// never becomes the one restored.
func LatestUsable(ctx context.Context, st storage.Store, bs []Backup) (Backup, bool, error) {
	order := make([]int, len(bs))
	for i := range order {
		order[i] = i
	}
	// Newest sentinel first; on a tie the later one in listing order.
	sort.SliceStable(order, func(x, y int) bool {
		a, b := bs[order[x]], bs[order[y]]
		if !a.Modified.Equal(b.Modified) {
			return a.Modified.After(b.Modified)
		}
		return order[x] > order[y]
	})
	for _, i := range order {
		err := bs[i].Check(ctx, st)
		if err == nil && bs[i].IsDelta {
			err = CheckChain(ctx, st, bs, i)
		}
		if err == nil {
			return bs[i], true, nil
		}
		if bs[i].Broken == "" {
			return Backup{}, false, err
		}
	}
	return Backup{}, false, nil
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
	b.sentinelSum = sha256Hex(data)
	return nil
}

// Resolve finds the one backup that name (a backup name or LATEST) means,
// with WAL-E's errors when there is none or more than one.
func Resolve(ctx context.Context, st storage.Store, name string) (Backup, error) {
	bs, i, err := resolveIn(ctx, st, name)
	if err != nil {
		return Backup{}, err
	}
	return bs[i], nil
}

// resolveIn is Resolve returning the whole listing and the index of the
// backup in it (a delta's chain is found in the listing).
func resolveIn(ctx context.Context, st storage.Store, name string) ([]Backup, int, error) {
	bs, err := List(ctx, st)
	if err != nil {
		return nil, 0, err
	}
	var found []int
	if name == "LATEST" {
		b, ok, err := LatestUsable(ctx, st, bs)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			for i := range bs {
				if bs[i].SentinelKey == b.SentinelKey {
					found = []int{i}
				}
			}
		}
	} else if IsName(name) {
		for i := range bs {
			if bs[i].Name == name {
				found = append(found, i)
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, 0, &walelog.UserError{
			Msg:    "no backups found for fetching",
			Detail: fmt.Sprintf("No backup matching the query %s was able to be located.", name),
		}
	case 1:
		return bs, found[0], nil
	}
	return nil, 0, &walelog.UserError{
		Msg:    "more than one backup found for fetching",
		Detail: fmt.Sprintf("More than one backup matching the query %s was able to be located.", name),
		Hint:   `To list qualifying backups, try "wal-e backup-list QUERY".`,
	}
}
