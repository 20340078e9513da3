package basebackup

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/wal"
	"github.com/walden-pg/walden/walelog"
)

// DeleteOptions is where delete works and whether it only says what it
// would do.
type DeleteOptions struct {
	Store  storage.Store
	Prefix storage.Prefix
	Log    *walelog.Logger
	DryRun bool
	// PGData, when known, is this host's data directory: leftovers are
	// reclaimed only if older than a backup of it that is running now.
	PGData string
	Now    time.Time // tests; zero means now
}

// candidate is one key a sweep chose, with WAL-E's name for its kind.
type candidate struct {
	key  string
	kind string
}

const unexpectedHint = "This means an unexpected key was found in a WAL-E prefix.  It can be harmless, or the result a bug or misconfiguration."

var (
	walObjRe     = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?(\.lzo|\.lz4|\.zst)?$`)
	backupHistRe = regexp.MustCompile(`^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.[0-9A-F]{8}\.backup(\.lzo|\.lz4|\.zst)?$`)
	historyRe    = regexp.MustCompile(`^[0-9A-F]{8}\.history`)
)

var (
	exactNameRe = regexp.MustCompile(`^base_[0-9A-F]{24}_[0-9A-F]{8}$`)
	exactSegRe  = regexp.MustCompile(`^[0-9A-F]{24}$`)
)

// Horizon parses delete before's argument: exactly a backup name (only its
// log and seg count, as in WAL-E) or exactly a 24-digit WAL segment name,
// which WAL-E's help allowed but its code crashed on. Anything longer or
// shorter is refused: a name with a suffix is more likely a typo than a
// horizon.
func Horizon(arg string) (uint64, error) {
	if exactNameRe.MatchString(arg) {
		return nameNumber(arg), nil
	}
	if exactSegRe.MatchString(arg) {
		if s, err := wal.ParseSegment(arg); err == nil {
			return s.Number(), nil
		}
	}
	return 0, &walelog.UserError{
		Msg:    "invalid delete before argument",
		Detail: fmt.Sprintf("%q is neither a base backup name (base_<SEGMENT>_<OFFSET>) nor a WAL segment name (24 hexadecimal digits).", arg),
	}
}

// segNumber is the timeline-blind position of a name's start segment.
func segNumber(log, seg string) uint64 {
	l, _ := strconv.ParseUint(log, 16, 32)
	s, _ := strconv.ParseUint(seg, 16, 32)
	return l<<32 | s
}

func nameNumber(name string) uint64 {
	seg, _, _ := StartSegment(name)
	return segNumber(seg[8:16], seg[16:24])
}

// DeleteBefore removes every base backup and WAL file older than the
// segment in arg (WAL-E's delete before). A backup name must name a
// complete backup in the store, and at least one complete backup must
// remain: a typo or a horizon past the newest backup would otherwise
// delete every backup and all WAL.
func DeleteBefore(ctx context.Context, o DeleteOptions, arg string) error {
	h, err := Horizon(arg)
	if err != nil {
		return err
	}
	bs, err := List(ctx, o.Store)
	if err != nil {
		return err
	}
	if exactNameRe.MatchString(arg) && !slices.ContainsFunc(bs, func(b Backup) bool { return b.Name == arg }) {
		return &walelog.UserError{
			Msg:    "no base backup named " + arg,
			Detail: "delete before takes the name of a complete base backup in the store; nothing was deleted.",
			Hint:   "List the backups with backup-list.",
		}
	}
	var newest string
	oldestKept := uint64(0)
	kept := 0
	for _, b := range bs {
		n := nameNumber(b.Name)
		if newest == "" || n > nameNumber(newest) {
			newest = b.Name
		}
		if n >= h {
			if kept == 0 || n < oldestKept {
				oldestKept = n
			}
			kept++
		}
	}
	if kept == 0 {
		detail := "The store holds no complete base backup."
		if newest != "" {
			detail = fmt.Sprintf("Its newest complete base backup is %s; nothing was deleted.", newest)
		}
		return &walelog.UserError{
			Msg:    fmt.Sprintf("delete before %s would delete every complete base backup", arg),
			Detail: detail,
			Hint:   "Name a backup (or segment) no newer than the newest complete backup; to empty the store use delete everything.",
		}
	}
	// WAL from the oldest remaining backup's start on stays (kept >= h by
	// construction; the min guards the rule itself).
	return o.beforeSplit(ctx, h, min(h, oldestKept))
}

func (o DeleteOptions) before(ctx context.Context, h uint64) error {
	return o.beforeSplit(ctx, h, h)
}

// beforeSplit deletes backups older than h and WAL older than walH.
func (o DeleteOptions) beforeSplit(ctx context.Context, h, walH uint64) error {
	var cands []candidate
	bb, err := o.backupSweep(ctx, h)
	if err != nil {
		return err
	}
	cands = append(cands, bb...)
	ws, err := o.walSweep(ctx, walH)
	if err != nil {
		return err
	}
	cands = append(cands, ws...)
	if err := o.run(ctx, cands); err != nil {
		return err
	}
	return o.reclaim(ctx, h)
}

func (o DeleteOptions) skipWarn(key, why string) {
	o.Log.Warn(walelog.Base, "skipping non-qualifying key in 'delete before'",
		fmt.Sprintf("The unexpected key is %q, and it appears %s.", o.Prefix.URL(key), why), unexpectedHint)
}

// backupSweep picks everything of backups that start before h, complete
// or not: sentinels, extended_version.txt and partitions.
func (o DeleteOptions) backupSweep(ctx context.Context, h uint64) ([]candidate, error) {
	objs, err := o.Store.List(ctx, Dir)
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, obj := range objs {
		parts := strings.Split(strings.TrimPrefix(obj.Key, Dir), "/")
		switch len(parts) {
		case 1:
			if !sentinelRe.MatchString(parts[0]) {
				o.skipWarn(obj.Key, "not to match the base-backup sentinel pattern")
			} else if nameNumber(parts[0]) < h {
				out = append(out, candidate{obj.Key, "a base backup sentinel file"})
			}
		case 2:
			if IsName(parts[0]) && strings.HasPrefix(parts[1], FilesObject) {
				if nameNumber(parts[0]) < h {
					out = append(out, candidate{obj.Key, "a base backup file list"})
				}
				continue
			}
			if !IsName(parts[0]) || parts[1] != "extended_version.txt" {
				o.skipWarn(obj.Key, "not to match the extended-version backup pattern")
			} else if nameNumber(parts[0]) < h {
				out = append(out, candidate{obj.Key, "a extended version metadata file"})
			}
		case 3:
			if !IsName(parts[0]) || parts[1] != "tar_partitions" {
				o.skipWarn(obj.Key, "not to match the base-backup partition pattern")
			} else if nameNumber(parts[0]) < h {
				out = append(out, candidate{obj.Key, "a base backup volume"})
			}
		default:
			o.skipWarn(obj.Key, "to be at an unexpected depth")
		}
	}
	return out, nil
}

// walSweep picks WAL segments (partial ones too) and backup history files
// before h. Timeline history files are kept: they are tiny and every
// later timeline's recovery needs them.
func (o DeleteOptions) walSweep(ctx context.Context, h uint64) ([]candidate, error) {
	objs, err := o.Store.List(ctx, wal.Dir)
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, obj := range objs {
		rest := strings.TrimPrefix(obj.Key, wal.Dir)
		if strings.Contains(rest, "/") {
			o.skipWarn(obj.Key, "to be at an unexpected depth")
			continue
		}
		if m := walObjRe.FindStringSubmatch(rest); m != nil {
			if segNumber(m[2], m[3]) < h {
				out = append(out, candidate{obj.Key, "a wal file"})
			}
			continue
		}
		if m := backupHistRe.FindStringSubmatch(rest); m != nil {
			if segNumber(m[2], m[3]) < h {
				out = append(out, candidate{obj.Key, "a backup history file"})
			}
			continue
		}
		if historyRe.MatchString(rest) {
			continue
		}
		o.skipWarn(obj.Key, "not to match the WAL file naming pattern")
	}
	return out, nil
}

// DeleteRetain keeps the n newest backups (by start segment, as WAL-E) and
// deletes everything older than the oldest of them, WAL included.
func DeleteRetain(ctx context.Context, o DeleteOptions, n int) error {
	if n < 1 {
		return &walelog.UserError{Msg: "invalid number of backups to retain", Detail: fmt.Sprintf("delete retain needs at least 1, not %d.", n)}
	}
	bs, err := List(ctx, o.Store)
	if err != nil {
		return err
	}
	sort.SliceStable(bs, func(i, j int) bool { return nameNumber(bs[i].Name) > nameNumber(bs[j].Name) })
	k := len(bs)
	switch {
	case k == 0:
		o.Log.Info(walelog.Base, "Not deleting any data.", "No existing base backups.", "")
		return nil
	case k == 1:
		o.Log.Info(walelog.Base, "Retaining existing base backup.", "", "Deleting keys older than "+o.Prefix.URL(bs[0].SentinelKey)+".")
		return o.before(ctx, nameNumber(bs[0].Name))
	case k <= n:
		o.Log.Info(walelog.Base, fmt.Sprintf("Retaining all %d base backups.", k), "", "Deleting keys older than "+o.Prefix.URL(bs[k-1].SentinelKey)+".")
		return o.before(ctx, nameNumber(bs[k-1].Name))
	}
	horizon := bs[n-1]
	o.Log.Info(walelog.Base, fmt.Sprintf("Deleting %d oldest base backups.", k-n), fmt.Sprintf("Found %d total base backups.", k),
		"Deleting keys older than "+o.Prefix.URL(horizon.SentinelKey)+".")
	return o.before(ctx, nameNumber(horizon.Name))
}

// DeleteEverything removes every base backup and WAL file.
func DeleteEverything(ctx context.Context, o DeleteOptions) error {
	return o.everything(ctx, Dir, wal.Dir)
}

// DeleteOldVersions removes the layouts older than 005 (basebackups_000/
// to _004/ and wal_000/ to _004/), what WAL-E meant to do and crashed on.
func DeleteOldVersions(ctx context.Context, o DeleteOptions) error {
	var dirs []string
	for v := 0; v < 5; v++ {
		dirs = append(dirs, fmt.Sprintf("basebackups_%03d/", v), fmt.Sprintf("wal_%03d/", v))
	}
	return o.everything(ctx, dirs...)
}

func (o DeleteOptions) everything(ctx context.Context, dirs ...string) error {
	var cands []candidate
	for _, d := range dirs {
		objs, err := o.Store.List(ctx, d)
		if err != nil {
			return err
		}
		kind := "part of wal logs"
		if strings.HasPrefix(d, "basebackups_") {
			kind = "part of a base backup"
		}
		for _, obj := range objs {
			cands = append(cands, candidate{obj.Key, kind})
		}
	}
	return o.run(ctx, cands)
}

// run logs every candidate as WAL-E did and, unless this is a dry run,
// deletes them: sentinels first, so a backup stops being listed before any
// of its parts goes. Every failure is reported; any makes the result an
// error (WAL-E could lose them).
func (o DeleteOptions) run(ctx context.Context, cands []candidate) error {
	hint := ""
	if o.DryRun {
		hint = "This is only a dry run -- no actual data is being deleted"
	}
	for _, c := range cands {
		o.Log.Info(walelog.Base, "deleting "+c.kind, "The key being deleted is "+o.Prefix.URL(c.key)+".", hint)
	}
	if o.DryRun || len(cands) == 0 {
		return nil
	}
	sort.SliceStable(cands, func(i, j int) bool {
		return strings.HasSuffix(cands[i].key, sentinelSuffix) && !strings.HasSuffix(cands[j].key, sentinelSuffix)
	})
	var mu sync.Mutex
	var failed []string
	del := func(key string) {
		if err := o.Store.Delete(ctx, key); err != nil {
			o.Log.Warn(walelog.Base, "failed while deleting resource", fmt.Sprintf("Deleting %s failed: %v", o.Prefix.URL(key), err), "")
			mu.Lock()
			failed = append(failed, key)
			mu.Unlock()
		}
	}
	// Sentinels one by one and first; the rest 8 at a time.
	i := 0
	for ; i < len(cands) && strings.HasSuffix(cands[i].key, sentinelSuffix); i++ {
		del(cands[i].key)
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, c := range cands[i:] {
		wg.Add(1)
		sem <- struct{}{}
		go func(key string) {
			defer wg.Done()
			defer func() { <-sem }()
			del(key)
		}(c.key)
	}
	wg.Wait()
	if len(failed) > 0 {
		sort.Strings(failed)
		return &walelog.UserError{
			Critical: true,
			Msg:      "Some keys were not deleted",
			Detail:   fmt.Sprintf("Failed keys: first %s, last %s, %d total", failed[0], failed[len(failed)-1], len(failed)),
		}
	}
	return ctx.Err()
}
