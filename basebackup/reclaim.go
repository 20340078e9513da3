package basebackup

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/walden-pg/walden/walelog"
)

// StaleAfter is how old a temporary file or an incomplete backup's newest
// object must be before delete and retention reclaim it. A running upload
// rewrites its temporary file continuously and a running backup adds an
// object at least once per partition, so nothing alive looks this old.
const StaleAfter = 6 * time.Hour

// tempFileRe is the file store's name for an object being written:
// ".<name>.tmp<random>" beside its final name.
var tempFileRe = regexp.MustCompile(`^\..+\.tmp[0-9]+$`)

// reclaimCutoff is the newest modification time that counts as stale: the
// age rule, and when a backup of this host's data directory is running,
// no later than its start.
func (o DeleteOptions) reclaimCutoff() time.Time {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	cut := now.Add(-StaleAfter)
	if o.PGData != "" {
		if h, running := RunningBackup(o.PGData); running {
			if h.Since.IsZero() {
				return time.Time{} // running since an unknown time: reclaim nothing
			}
			if h.Since.Before(cut) {
				cut = h.Since
			}
		}
	}
	return cut
}

// reclaim removes what killed backups and uploads left behind: the file
// store's temporary files, and incomplete backups (no sentinel) not older
// than the horizon h (older ones go with the regular sweep) whose newest
// object is older than the cutoff.
func (o DeleteOptions) reclaim(ctx context.Context, h uint64) error {
	cut := o.reclaimCutoff()
	if cut.IsZero() {
		return nil
	}
	var cands []candidate
	if o.Prefix.Scheme == "file" {
		root := "/" + o.Prefix.Path
		for _, d := range []string{Dir, WALDir} {
			base := filepath.Join(root, d)
			_ = filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() || !tempFileRe.MatchString(e.Name()) {
					return nil
				}
				if fi, err := e.Info(); err == nil && fi.ModTime().Before(cut) {
					rel, _ := filepath.Rel(root, p)
					cands = append(cands, candidate{filepath.ToSlash(rel), "a leftover temporary file"})
				}
				return nil
			})
		}
	}
	objs, err := o.Store.List(ctx, Dir)
	if err != nil {
		return err
	}
	complete := map[string]bool{}
	newest := map[string]time.Time{}
	keys := map[string][]string{}
	for _, obj := range objs {
		rest := strings.TrimPrefix(obj.Key, Dir)
		if !strings.Contains(rest, "/") {
			if sentinelRe.MatchString(rest) {
				complete[rest[:nameLen]] = true
			}
			if name, ok := strings.CutSuffix(rest, deltaSentinelSuffix); ok && IsDeltaName(name) {
				complete[name] = true
			}
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		if !(IsName(name) && len(name) == nameLen) && !IsDeltaName(name) {
			continue
		}
		keys[name] = append(keys[name], obj.Key)
		if obj.Modified.After(newest[name]) {
			newest[name] = obj.Modified
		}
	}
	for name, ks := range keys {
		if complete[name] || nameNumber(name) < h || !newest[name].Before(cut) {
			continue
		}
		for _, k := range ks {
			cands = append(cands, candidate{k, "a part of an abandoned incomplete base backup"})
		}
	}
	if len(cands) > 0 {
		o.Log.Info(walelog.Base, fmt.Sprintf("reclaiming %d leftover object(s) of interrupted uploads", len(cands)),
			fmt.Sprintf("Temporary files and parts of backups without a sentinel, last written before %s.", cut.UTC().Format(time.RFC3339)), "")
	}
	return o.run(ctx, cands)
}
