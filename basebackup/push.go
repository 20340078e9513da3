package basebackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// PushOptions configures one base backup.
type PushOptions struct {
	Store  storage.Store
	Prefix storage.Prefix
	Format blob.Format
	Log    *walelog.Logger
	PGData string

	Concurrency      int   // partitions in flight (WALDEN_UPLOAD_CONCURRENCY, --pool-size)
	PartitionSize    int64 // target uncompressed size of one partition
	RateLimit        int64 // bytes/s read from PGDATA; 0 = unlimited
	NetworkRateLimit int64 // bytes/s sent to the store; 0 = unlimited
	Offline          bool  // --while-offline: the cluster is stopped
	ConnString       string
	Locked           bool // the caller already holds Lock(PGData)
	// DeltaMaxSteps > 0 makes the backup a page-level delta of the newest
	// backup while its chain has fewer deltas (DELTA.md); Full forces a
	// full backup. Backups written for WAL-E (lzo) are always full.
	DeltaMaxSteps int
	Full          bool

	// WALTimeout bounds the wait, after the backup stopped, for its WAL
	// to be archived and listed in the store (0: DefaultWALTimeout).
	WALTimeout time.Duration

	// Progress, if set, is called after each partition and every
	// ProgressInterval (default 30s), when a progress line is also logged.
	Progress         func(Progress)
	ProgressInterval time.Duration

	sess session // tests: stands in for the server
}

// Progress is how far a running backup got.
type Progress struct {
	BytesRead       int64 // read from PGDATA so far
	BytesTotal      int64 // size of the selected files when walked
	PartitionsDone  int
	PartitionsTotal int
}

// Result describes a finished backup.
type Result struct {
	Name       string
	StartTime  time.Time
	FinishTime time.Time
	Size       int64 // uncompressed: sum of member sizes
	Stored     int64 // bytes uploaded in partitions
	Partitions int
	StartLSN   LSN
	FinishLSN  LSN
	Sentinel   *Sentinel
	Parent     string // a delta's parent; "" for a full backup
	Read       int64  // bytes read from PGDATA (a delta reads every page, stores few)
}

// Push takes a base backup of o.PGData: starts a non-exclusive backup (or,
// with Offline, reads pg_controldata), uploads the partitions in parallel,
// stops the backup and adds backup_label, tablespace_map and pg_control in
// a last partition, then writes the sentinel. On any failure, including a
// cancelled ctx, the backup is ended on the server and no sentinel is
// written, so nothing lists or restores it.
func Push(ctx context.Context, o PushOptions) (Result, error) {
	pgdata, err := CheckDataDir(o.PGData)
	if err != nil {
		return Result{}, err
	}
	if !o.Locked {
		unlock, err := Lock(pgdata)
		if err != nil {
			return Result{}, err
		}
		defer unlock()
	}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	if o.PartitionSize <= 0 {
		o.PartitionSize = 1 << 30
	}

	sess := o.sess
	switch {
	case sess != nil:
	case o.Offline:
		sess = &offlineSession{pgdata: pgdata}
	default:
		s, err := connect(ctx, o.ConnString)
		if err != nil {
			return Result{}, &walelog.UserError{Msg: "Could not start hot backup", Detail: oneLine(err.Error())}
		}
		s.pgdata = pgdata
		s.walTimeout = o.WALTimeout
		s.warn = func(msg string) { o.Log.Warn(walelog.Backup, "blocking on sending WAL segments", msg, "") }
		if err := s.checkDataDir(ctx, pgdata); err != nil {
			s.close()
			return Result{}, &walelog.UserError{Msg: "Could not start hot backup", Detail: err.Error()}
		}
		sess = s
	}
	defer sess.close()

	res := Result{StartTime: time.Now().UTC()}
	label := "freeze_start_" + res.StartTime.Format("2006-01-02T15:04:05.000000") + "+00:00"
	si, err := sess.start(ctx, label)
	if err != nil {
		sess.abort()
		var ue *walelog.UserError
		if errors.As(err, &ue) {
			return Result{}, err
		}
		return Result{}, &walelog.UserError{Msg: "Could not start hot backup", Detail: oneLine(err.Error())}
	}
	blcksz := defaultBlockSize
	if pg, ok := sess.(*pgSession); ok {
		blcksz = pg.blockSize(ctx) // before the watch below shares the connection
	}
	finished := false
	defer func() {
		if !finished {
			sess.abort()
		}
	}()
	ctx, cancel := context.WithCancel(ctx) // releases the watch below
	defer cancel()
	stopWatch := func() {}
	if pg, ok := sess.(*pgSession); ok {
		ctx, stopWatch = pg.watch(ctx)
		defer stopWatch()
	}
	res.Name = BackupName(si.File, si.Offset)
	res.StartLSN = si.LSN
	var parent *deltaParent
	switch {
	case o.DeltaMaxSteps <= 0:
	case isWALECompat(o):
		o.Log.Warn(walelog.WaldenName, "WALDEN_DELTA_MAX_STEPS is ignored: WALDEN_COMPRESSION=lzo keeps the store restorable by WAL-E, which cannot restore delta backups; taking a full backup", "", "")
	case o.Full:
		logDeltaDecision(o.Log, nil, "--full was given", o.DeltaMaxSteps)
	default:
		var why string
		parent, why = chooseParent(ctx, o.Store, o.Format.Crypt, pgdata, o.DeltaMaxSteps,
			clusterID{sysID: si.SysID, version: si.VersionNum, timeline: si.Timeline, startLSN: si.LSN, blockSize: blcksz})
		logDeltaDecision(o.Log, parent, why, o.DeltaMaxSteps)
	}
	if parent != nil {
		res.Name = DeltaName(res.Name, parent.name)
		res.Parent = parent.name
	}

	p := &pusher{o: o, name: res.Name, up: &uploader{store: o.Store, prefix: o.Prefix, format: o.Format, log: o.Log, net: newLimiter(o.NetworkRateLimit)},
		limiter: newLimiter(o.RateLimit), names: newIDNames(pgdata)}
	if err := p.putVersion(ctx, si.Version); err != nil {
		return Result{}, p.interrupted(ctx, err)
	}
	w, err := walk(pgdata, strings.TrimSuffix(pgdata, "/")+"/")
	if err != nil {
		return Result{}, p.interrupted(ctx, err)
	}
	p.blcksz = blcksz
	if parent != nil {
		p.threshold = parent.startLSN
		planDelta(w.members, parent)
	}
	parts := split(w.members, o.PartitionSize)
	for _, m := range w.members {
		p.total += m.size
	}
	p.partsTotal = len(parts) + 1
	stopProgress := p.reportProgress(ctx)
	infos, err := p.putAll(ctx, parts)
	stopProgress()
	if err != nil {
		return Result{}, p.interrupted(ctx, err)
	}

	// pg_control last, while the backup is still open, so it is at least
	// as new as every file copied before it.
	control, err := os.ReadFile(filepath.Join(pgdata, "global", "pg_control"))
	if err != nil {
		return Result{}, p.interrupted(ctx, err)
	}
	stopWatch()
	st, err := sess.stop(ctx)
	if err != nil {
		return Result{}, p.interrupted(ctx, &walelog.UserError{Msg: "Could not stop hot backup", Detail: oneLine(err.Error())})
	}
	res.FinishLSN = st.LSN
	last := []member{{name: "global/pg_control", kind: kindData, data: control}}
	if st.Label != "" {
		last = append(last, member{name: "backup_label", kind: kindData, data: []byte(st.Label)})
	}
	if st.TablespaceMap != "" {
		last = append(last, member{name: "tablespace_map", kind: kindData, data: []byte(st.TablespaceMap)})
	}
	info, err := p.putPartition(ctx, len(parts), last)
	if err != nil {
		return Result{}, p.interrupted(ctx, err)
	}
	infos = append(infos, info)
	p.partitionDone()
	files, err := p.putFileList(ctx, p.files, blcksz)
	if err != nil {
		return Result{}, p.interrupted(ctx, err)
	}

	// The sentinel certifies a restorable backup: its WAL, from the start
	// to the stop segment, must be in the store first. An offline backup
	// needs none (it is consistent by itself).
	if !o.Offline {
		r, err := newSegRange(si.File, st.File, si.SegSize)
		if err == nil {
			err = waitWALInStore(ctx, o.Store, o.Prefix, r, o.WALTimeout, o.Log)
		}
		if err != nil {
			return Result{}, p.interrupted(ctx, err)
		}
	}

	res.FinishTime = time.Now().UTC()
	for _, in := range infos {
		res.Size += in.ExpandedSize
		res.Stored += in.StoredSize
	}
	res.Partitions = len(infos)
	res.Read = p.read.Load()
	res.Sentinel = p.sentinel(si, st, w.spec, infos, res, pgdata)
	res.Sentinel.Walden.Files = files
	key := SentinelKey(res.Name)
	if parent != nil {
		res.Sentinel.Walden.Delta = &DeltaInfo{Parent: parent.name, ParentSentinelSHA256: parent.sentinelSHA,
			ParentStartLSN: parent.startLSN.String(), Full: parent.full, Step: parent.step + 1}
		key = DeltaSentinelKey(res.Name)
	}
	if err := p.putSentinel(ctx, key, res.Sentinel); err != nil {
		return Result{}, p.interrupted(ctx, err)
	}
	finished = true
	saveFileListCache(pgdata, files.SHA256, p.fileList)
	return res, nil
}

// CheckDataDir returns pgdata as an absolute path, or a user error when it
// is not a PostgreSQL data directory.
func CheckDataDir(pgdata string) (string, error) {
	abs, err := filepath.Abs(pgdata)
	if err != nil {
		return "", err
	}
	for _, f := range []string{"PG_VERSION", "global/pg_control"} {
		if _, err := os.Stat(filepath.Join(abs, f)); err != nil {
			return "", &walelog.UserError{
				Msg:    "not a PostgreSQL data directory",
				Detail: fmt.Sprintf("%s has no %s: %v", abs, f, errors.Unwrap(err)),
				Hint:   "Give the data directory of the cluster to back up (the one holding PG_VERSION).",
			}
		}
	}
	return abs, nil
}

// pusher holds the state shared by one backup's partitions.
type pusher struct {
	o       PushOptions
	name    string
	up      *uploader
	limiter *rate.Limiter // shared: the limit is for the whole backup
	names   *idNames

	// Delta backups and the file list.
	threshold LSN
	blcksz    int
	files     []FileEntry // of every partition, appended as each ends
	filesMu   sync.Mutex
	fileList  FileList // as stored, once the partitions are

	read       atomic.Int64
	total      int64
	mu         sync.Mutex
	partsDone  int
	partsTotal int
}

func (p *pusher) putVersion(ctx context.Context, version string) error {
	key := VersionKey(p.name)
	url := p.o.Prefix.PushURL(key)
	p.o.Log.Info(walelog.Backup, "start upload postgres version metadata", fmt.Sprintf("Uploading to %s.", url), "")
	if err := p.o.Store.Put(ctx, key, strings.NewReader(version), int64(len(version)), storage.PutOptions{ContentType: "text/plain"}); err != nil {
		return err
	}
	p.o.Log.Info(walelog.Backup, "postgres version metadata upload complete", "", "")
	return nil
}

// putAll uploads the walked partitions, Concurrency at a time; the first
// failure cancels the others.
func (p *pusher) putAll(ctx context.Context, parts [][]member) ([]PartitionInfo, error) {
	infos := make([]PartitionInfo, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.o.Concurrency)
	for i := range parts {
		g.Go(func() error {
			info, err := p.putPartition(gctx, i, parts[i])
			if err != nil {
				return err
			}
			infos[i] = info
			p.partitionDone()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return infos, nil
}

func (p *pusher) putPartition(ctx context.Context, n int, ms []member) (PartitionInfo, error) {
	return p.up.put(ctx, p.name, n, func(w io.Writer) (int64, int, error) {
		tw := newTarWriter(w, p.limiter, &p.read, p.names)
		tw.own, tw.threshold, tw.blcksz = p.name, p.threshold, p.blcksz
		for _, m := range ms {
			if err := tw.add(ctx, m); err != nil {
				return 0, 0, err
			}
		}
		if err := tw.close(); err != nil {
			return 0, 0, err
		}
		p.filesMu.Lock()
		p.files = append(p.files, tw.files...)
		p.filesMu.Unlock()
		return tw.expanded, tw.members, nil
	})
}

func (p *pusher) partitionDone() {
	p.mu.Lock()
	p.partsDone++
	p.mu.Unlock()
	if p.o.Progress != nil {
		p.o.Progress(p.progress())
	}
}

func (p *pusher) progress() Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Progress{BytesRead: p.read.Load(), BytesTotal: p.total, PartitionsDone: p.partsDone, PartitionsTotal: p.partsTotal}
}

// progressEvery is how often a running backup hands its counters to
// o.Progress (the agent's live metrics), independent of the log interval.
var progressEvery = time.Second

// reportProgress logs a progress line every interval, and passes the
// counters to o.Progress every progressEvery, until stopped.
func (p *pusher) reportProgress(ctx context.Context) (stop func()) {
	every := p.o.ProgressInterval
	if every <= 0 {
		every = 30 * time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		live := time.NewTicker(progressEvery)
		defer live.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-live.C:
				if p.o.Progress != nil {
					p.o.Progress(p.progress())
				}
			case <-t.C:
				pr := p.progress()
				pct := 0.0
				if pr.BytesTotal > 0 {
					pct = 100 * float64(pr.BytesRead) / float64(pr.BytesTotal)
				}
				p.o.Log.Info(walelog.WaldenName, "base backup progress",
					fmt.Sprintf("Read %d of about %d bytes (%.0f%%) at %.1f MiB/s; %d of %d volumes uploaded.",
						pr.BytesRead, pr.BytesTotal, pct, float64(pr.BytesRead)/(1<<20)/time.Since(start).Seconds(), pr.PartitionsDone, pr.PartitionsTotal),
					"", walelog.F("backup", p.name))
				if p.o.Progress != nil {
					p.o.Progress(pr)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (p *pusher) sentinel(si startInfo, st stopInfo, spec Spec, infos []PartitionInfo, res Result, pgdata string) *Sentinel {
	start, finish := uint64(si.LSN), uint64(st.LSN)
	host, _ := os.Hostname()
	m := &Manifest{
		FormatVersion: manifestFormat,
		Compression:   p.o.Format.Codec.Name(),
		Partitions:    infos,
		Offline:       p.o.Offline,
		Timeline:      si.Timeline,
		StartLSN:      si.LSN.String(),
		FinishLSN:     st.LSN.String(),
	}
	if fp, ok := p.o.Format.Crypt.(interface{ Fingerprint() string }); ok && p.o.Format.Crypt != nil {
		m.EncryptionKey = fp.Fingerprint()
	}
	return &Sentinel{
		StopSegment:       st.File,
		StopOffset:        PadOffset(st.Offset),
		ExpandedSizeBytes: res.Size,
		Spec:              &spec,
		Extra: Extra{
			LSN:              &start,
			FinishLSN:        &finish,
			PgVersion:        si.VersionNum,
			SystemIdentifier: si.SysID,
			UncompressedSize: res.Size,
			CompressedSize:   res.Stored,
			StartTime:        &res.StartTime,
			FinishTime:       &res.FinishTime,
			Hostname:         host,
			DataDir:          pgdata,
			Walden:           m,
		},
	}
}

func (p *pusher) putSentinel(ctx context.Context, key string, s *Sentinel) error {
	data, err := s.Marshal()
	if err != nil {
		return err
	}
	return p.o.Store.Put(ctx, key, strings.NewReader(string(data)), int64(len(data)), storage.PutOptions{ContentType: "application/json"})
}

// interrupted turns the failure of a started backup into one clear error.
func (p *pusher) interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		return fmt.Errorf("base backup %s interrupted (%v); it was ended on the server and no sentinel was written", p.name, cause)
	}
	var ue *walelog.UserError
	if errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("base backup %s failed, no sentinel was written: %w", p.name, err)
}

// split assigns members in walk order to partitions of about limit bytes.
func split(ms []member, limit int64) [][]member {
	var out [][]member
	var cur []member
	var size int64
	for _, m := range ms {
		if len(cur) > 0 && size+m.size > limit {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, m)
		size += m.size
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
