package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/walelog"
)

// DrillOptions configures a restore drill.
type DrillOptions struct {
	Verify Options // store, prefix, crypt, concurrency; Backup is the backup to drill
	Log    *walelog.Logger
	// Scratch is the directory the drill works in; it must be new or
	// empty. "" makes one under DrillDir.
	Scratch  string
	DrillDir string
	Target   basebackup.Target // Time or LSN; none: the end of the archive
	Query    string
	Keep     bool
	PGBin    string // "" = /usr/lib/postgresql/<major>/bin
	// RestoreCommand is restore_command: this binary with the same
	// configuration, running wal-fetch.
	RestoreCommand func(dataDir string) (string, error)
}

// DefaultQuery is the drill's catalog sanity check.
const DefaultQuery = "SELECT (SELECT count(*) FROM pg_database) AS databases, (SELECT count(*) FROM pg_class) AS relations"

// DrillResult is the outcome of a drill.
type DrillResult struct {
	Backup         string  `json:"backup"`
	Scratch        string  `json:"scratch"`
	Kept           bool    `json:"kept"`
	OK             bool    `json:"ok"`
	Problem        string  `json:"problem,omitempty"`
	FetchSeconds   float64 `json:"fetch_seconds"`
	FetchedBytes   int64   `json:"fetched_bytes"`
	ReplaySeconds  float64 `json:"replay_seconds"`
	ReplayBytes    uint64  `json:"replay_bytes"`
	ReplayMiBps    float64 `json:"replay_mib_per_second"`
	ReplayStart    string  `json:"replay_start_lsn"`
	ReplayEnd      string  `json:"replay_end_lsn,omitempty"`
	EndSegment     string  `json:"end_segment,omitempty"`
	NewestArchived string  `json:"newest_archived_segment,omitempty"`
	Target         string  `json:"target,omitempty"`
	QueryOutput    string  `json:"query_output,omitempty"`
	ServerLog      string  `json:"server_log_tail,omitempty"`
}

// DrillError is a drill that ran and failed: the result says how far it got.
type DrillError struct{ Msg string }

func (e *DrillError) Error() string { return e.Msg }

func userErr(format string, a ...any) error {
	return &walelog.UserError{Msg: fmt.Sprintf(format, a...)}
}

// Drill restores a backup into a scratch directory, replays the archive
// with a private PostgreSQL (no TCP, archive_mode off) and proves that
// replay reached the newest archived segment (or the target).
func Drill(ctx context.Context, o DrillOptions) (*DrillResult, error) {
	vo := o.Verify
	if vo.Backup == "" {
		vo.Backup = "LATEST"
	}
	if vo.Backup == "all" {
		return nil, userErr("a drill restores one backup: give --backup NAME or LATEST, not all")
	}
	vo.Quick = true
	bs, err := Select(ctx, vo)
	if err != nil {
		return nil, err
	}
	b := bs[0]
	if err := b.Load(ctx, vo.Store); err != nil {
		return nil, err
	}
	res := &DrillResult{Backup: b.Name}
	if o.Target.Time != "" {
		res.Target = "time " + o.Target.Time
	} else if o.Target.LSN != "" {
		res.Target = "lsn " + o.Target.LSN
	}

	major := 0
	if b.Sentinel.PgVersion != 0 {
		major = majorOfNum(b.Sentinel.PgVersion)
	}
	if major == 0 {
		if v, err := readAll(ctx, vo.Store, basebackup.VersionKey(b.Name), nil, 4096); err == nil {
			major = majorOf(string(v))
		}
	}
	bin := o.PGBin
	if bin == "" {
		if major == 0 {
			return nil, userErr("cannot tell the PostgreSQL major version of %s: give --pg-bin", b.Name)
		}
		bin = fmt.Sprintf("/usr/lib/postgresql/%d/bin", major)
	}
	for _, p := range []string{"postgres", "pg_ctl", "psql"} {
		if fi, err := os.Stat(filepath.Join(bin, p)); err != nil || fi.IsDir() {
			return nil, userErr("PostgreSQL binaries not found: %s has no %s (install the server of PostgreSQL %d or give --pg-bin)", bin, p, major)
		}
	}

	scratch := o.Scratch
	if scratch == "" {
		if o.DrillDir == "" {
			return nil, userErr("no scratch directory: give --scratch or set WALDEN_DRILL_DIR")
		}
		scratch = filepath.Join(o.DrillDir, "drill-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	scratch, err = filepath.Abs(scratch)
	if err != nil {
		return nil, err
	}
	if ents, err := os.ReadDir(scratch); err == nil && len(ents) > 0 {
		return nil, userErr("scratch directory %s is not empty: a drill needs a new or empty directory", scratch)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, userErr("scratch directory %s: %v", scratch, err)
	}
	created := false
	if _, err := os.Stat(scratch); errors.Is(err, fs.ErrNotExist) {
		// Parents stay traversable: the server runs as another user.
		if err := os.MkdirAll(filepath.Dir(scratch), 0o755); err != nil {
			return nil, userErr("cannot create scratch directory %s: %v", scratch, err)
		}
		if err := os.Mkdir(scratch, 0o700); err != nil {
			return nil, userErr("cannot create scratch directory %s: %v", scratch, err)
		}
		created = true
	}
	res.Scratch = scratch
	cleanup := func() {
		if o.Keep {
			res.Kept = true
			return
		}
		if created {
			os.RemoveAll(scratch)
			return
		}
		ents, _ := os.ReadDir(scratch)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(scratch, e.Name()))
		}
	}

	// Free space: the expanded backup, plus the WAL segments recovery
	// holds at once (restored and prefetched ones, PostgreSQL's own).
	need := b.Sentinel.ExpandedSizeBytes
	if m := b.Sentinel.Walden; m != nil {
		var sum int64
		for _, p := range m.Partitions {
			sum += p.ExpandedSize
		}
		need = max(need, sum)
	}
	need += 24 * basebackup.DefaultSegmentSize
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(scratch, &sfs); err == nil {
		if free := int64(sfs.Bavail) * int64(sfs.Bsize); free < need {
			cleanup()
			return nil, userErr("not enough free space in %s: the drill needs about %d MiB (backup expanded plus WAL), %d MiB are free", scratch, need>>20, free>>20)
		}
	}

	srv, err := newDrillServer(scratch, bin)
	if err != nil {
		cleanup()
		return nil, err
	}
	defer func() {
		srv.stop()
		cleanup()
	}()

	// Fetch.
	t0 := time.Now()
	fr, err := basebackup.Fetch(ctx, basebackup.FetchOptions{
		Store: vo.Store, Prefix: vo.Prefix, Crypt: vo.Crypt, Log: o.Log,
		PGData: srv.data, Backup: b.Name, Concurrency: vo.Concurrency, BlindRestore: true,
	})
	res.FetchSeconds = time.Since(t0).Seconds()
	res.FetchedBytes = fr.Bytes
	if err != nil {
		return res, err
	}
	if len(fr.ConfigMissing) > 0 {
		if err := basebackup.WriteMissingConfig(srv.data, fr.ConfigMissing); err != nil {
			return res, err
		}
	}
	rc, err := o.RestoreCommand(srv.data)
	if err != nil {
		return res, err
	}
	if _, err := basebackup.WriteRecovery(srv.data, basebackup.RecoverySettings(rc, o.Target)); err != nil {
		return res, err
	}

	// Replay.
	inv, hist, err := prepare(ctx, vo, &problems{})
	if err != nil {
		return res, err
	}
	// Where replay starts: the restored backup_label, else pg_control
	// (an offline backup starts at its checkpoint).
	var startLSN uint64
	var tli uint32
	if lb, err := os.ReadFile(filepath.Join(srv.data, "backup_label")); err == nil {
		if l, err := parseLabel(lb); err == nil {
			startLSN, tli = l.Start, l.Timeline
		}
	}
	if tli == 0 {
		cb, err := os.ReadFile(filepath.Join(srv.data, "global", "pg_control"))
		if err == nil {
			var c control
			if c, err = parseControl(cb); err == nil {
				startLSN, tli = c.Redo, c.Timeline
			}
		}
		if err != nil {
			return res, fmt.Errorf("restored %s: %v", b.Name, err)
		}
	}
	p := inv.path(tli, hist)
	if newest, ok := inv.newestOnPath(p); ok {
		res.NewestArchived = inv.expected(p, newest)
	}
	res.ReplayStart = basebackup.LSN(startLSN).String()
	t1 := time.Now()
	if err := srv.start(ctx); err != nil {
		return res, err
	}
	if err := srv.waitPromoted(ctx); err != nil {
		res.ReplaySeconds = time.Since(t1).Seconds()
		res.ServerLog = srv.logTail(20)
		res.Problem = err.Error()
		return res, &DrillError{Msg: fmt.Sprintf("drill of %s failed: %v", b.Name, err)}
	}
	res.ReplaySeconds = time.Since(t1).Seconds()

	// Where replay ended: the switch point of the history file promotion wrote.
	end, err := srv.promotionPoint()
	if err != nil {
		res.Problem = err.Error()
		return res, &DrillError{Msg: fmt.Sprintf("drill of %s failed: %v", b.Name, err)}
	}
	res.ReplayEnd = basebackup.LSN(end).String()
	if end > startLSN {
		res.ReplayBytes = end - startLSN
	}
	if res.ReplaySeconds > 0 {
		res.ReplayMiBps = float64(res.ReplayBytes) / (1 << 20) / res.ReplaySeconds
	}
	endSeg := (end - 1) / inv.segSize
	res.EndSegment = inv.expected(p, endSeg)
	switch {
	case o.Target.LSN != "":
		want, _ := basebackup.ParseLSN(o.Target.LSN)
		if end < uint64(want) {
			res.Problem = fmt.Sprintf("replay ended at %s, before the target %s", res.ReplayEnd, o.Target.LSN)
		}
	case o.Target.Time != "":
		// PostgreSQL refuses to promote short of a time target.
	default:
		if newest, ok := inv.newestOnPath(p); ok && endSeg < newest {
			next := inv.expected(p, endSeg+1)
			why := "missing from the archive"
			if _, ok := inv.segs[next]; ok {
				why = "in the archive but unusable"
			}
			res.Problem = fmt.Sprintf("replay ended at %s in %s, but the archive goes on to %s: the first segment recovery could not use is %s (%s)",
				res.ReplayEnd, res.EndSegment, inv.expected(p, newest), next, why)
		}
	}
	if res.Problem != "" {
		res.ServerLog = srv.logTail(20)
		return res, &DrillError{Msg: fmt.Sprintf("drill of %s failed: %s", b.Name, res.Problem)}
	}

	q := o.Query
	if q == "" {
		q = DefaultQuery
	}
	out, err := srv.psql(ctx, q)
	if err != nil {
		res.Problem = fmt.Sprintf("query failed: %v", err)
		return res, &DrillError{Msg: fmt.Sprintf("drill of %s failed: %s", b.Name, res.Problem)}
	}
	res.QueryOutput = out
	res.OK = true
	return res, nil
}

// newestHistory is the highest-numbered timeline history file in dir.
func newestHistory(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var hs []string
	for _, e := range ents {
		if n := e.Name(); len(n) == 16 && strings.HasSuffix(n, ".history") {
			if _, err := strconv.ParseUint(n[:8], 16, 32); err == nil {
				hs = append(hs, n)
			}
		}
	}
	if len(hs) == 0 {
		return "", fmt.Errorf("promotion wrote no timeline history file in %s", dir)
	}
	sort.Strings(hs)
	return filepath.Join(dir, hs[len(hs)-1]), nil
}
