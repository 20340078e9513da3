// Package verify proves an archive restores: it reads every backup and
// the WAL each one needs, as a restore would, without writing anything to
// the store or to disk; and it runs restore drills on a scratch cluster.
package verify

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/wal"
	"github.com/walden-pg/walden/walelog"
)

// Options configures a verify run.
type Options struct {
	Store  storage.Store
	Prefix storage.Prefix
	Crypt  blob.Crypter
	// Backup is "" (the backups retention keeps), "all", "LATEST" or a name.
	Backup string
	Retain basebackup.RetainPolicy
	Quick  bool
	// Concurrency bounds the objects read at once.
	Concurrency int
	// Progress, if set, learns the stored bytes to read and counts each
	// object's bytes as it is checked (the terminal progress bar).
	Progress basebackup.ByteProgress
}

// partJob is one partition read of one backup.
type partJob struct {
	f   *facts
	key string
	run func() partResult
}

// facts is what verify learns about a backup's place in the WAL.
type facts struct {
	rep        *BackupReport
	tli        uint32
	start      uint64
	stop       uint64
	startKnown bool
	stopKnown  bool
	sysid      uint64
	sysidKnown bool
	major      int
}

// Select resolves opt.Backup to the backups to verify. An unknown name is
// an error.
func Select(ctx context.Context, o Options) ([]basebackup.Backup, error) {
	bs, err := basebackup.List(ctx, o.Store)
	if err != nil {
		return nil, err
	}
	switch o.Backup {
	case "all":
		return bs, nil
	case "":
		if len(bs) == 0 {
			return nil, nil
		}
		p := o.Retain
		if p.Count < 1 && p.Age <= 0 {
			return bs, nil
		}
		res, err := basebackup.Retain(ctx, basebackup.DeleteOptions{Store: o.Store, Prefix: o.Prefix, Log: walelog.New(walelog.Options{Stderr: io.Discard}), DryRun: true}, p)
		if err != nil {
			return nil, err
		}
		keep := map[string]bool{}
		for _, n := range res.Kept {
			keep[n] = true
		}
		var out []basebackup.Backup
		for _, b := range bs {
			if keep[b.Name] {
				out = append(out, b)
			}
		}
		return out, nil
	}
	found, ok := basebackup.Query(bs, o.Backup)
	if !ok || len(found) == 0 {
		return nil, &walelog.UserError{Msg: "no such backup", Detail: fmt.Sprintf("No backup matching %q exists in %s.", o.Backup, o.Prefix.URL(basebackup.Dir))}
	}
	return found[:1], nil
}

// Run verifies the selected backups and their WAL. Errors are returned
// only when verify could not run (bad input, an unreadable listing); what
// is wrong with the archive is in the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	began := time.Now()
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	rep := &Report{Quick: o.Quick}
	var probs problems
	bs, err := Select(ctx, o)
	if err != nil {
		return nil, err
	}
	if len(bs) == 0 {
		rep.NoBackups = true
	}
	inv, hist, err := prepare(ctx, o, &probs)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var bytesRead int64
	count := func(n int64) {
		mu.Lock()
		bytesRead += n
		mu.Unlock()
		if o.Progress != nil {
			o.Progress.Add(n)
		}
	}

	// Backups: sentinels, partitions, and where each one's WAL starts.
	fs := make([]*facts, len(bs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	var jobs []partJob
	partRes := map[*facts][]partResult{}
	var all []basebackup.Backup // the listing a delta's chain is found in
	var chainBytes int64
	for i := range bs {
		b := &bs[i]
		f := &facts{rep: &BackupReport{Name: b.Name, FilesOK: true, Gaps: []Gap{}, Problems: []Problem{}}}
		fs[i] = f
		if err := b.Load(ctx, o.Store); err != nil {
			f.rep.FilesOK = false
			probs.add(b.SentinelKey, "sentinel cannot be read: %v", err)
			continue
		}
		jobs = append(jobs, planBackup(ctx, o, *b, f, &probs)...)
		if b.IsDelta {
			if all == nil {
				if all, err = basebackup.List(ctx, o.Store); err != nil {
					return nil, err
				}
			}
			cj, n := planChain(ctx, o, all, *b, f, &probs)
			jobs = append(jobs, cj...)
			chainBytes += n
		}
	}
	// A partition several selected chains share is read once.
	byKey := map[string]int{}
	var uniq []partJob
	for _, j := range jobs {
		if _, ok := byKey[j.key]; !ok {
			byKey[j.key] = len(uniq)
			uniq = append(uniq, j)
		}
	}
	results := make([]partResult, len(uniq))
	var planned int64
	if o.Progress != nil {
		for _, f := range fs {
			planned += f.rep.StoredBytes
		}
		planned += chainBytes
		o.Progress.SetTotal(planned)
	}
	for i, j := range uniq {
		g.Go(func() error {
			results[i] = j.run()
			results[i].key = j.key
			count(results[i].stored)
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, j := range jobs {
		partRes[j.f] = append(partRes[j.f], results[byKey[j.key]])
	}
	for i := range bs {
		finishBackup(ctx, o, bs[i], fs[i], partRes[fs[i]], inv, &probs)
	}

	// WAL: the segments every backup's recovery path needs.
	need := map[string]walObject{}
	paths := make([][]step, len(fs))
	ends := make([]uint64, len(fs))
	for i, f := range fs {
		if !f.startKnown {
			continue
		}
		p := inv.path(f.tli, hist)
		paths[i] = p
		end, ok := inv.newestOnPath(p)
		if !ok || end < f.start {
			end = f.start
		}
		if f.stopKnown && f.stop > end {
			end = f.stop
		}
		ends[i] = end
		for n := f.start; n <= end; n++ {
			if o, ok := inv.segs[inv.expected(p, n)]; ok {
				need[o.Name] = o
			}
		}
	}
	segRes := map[string]segResult{}
	if !o.Quick && o.Progress != nil {
		for _, obj := range need {
			planned += obj.Size
		}
		o.Progress.SetTotal(max(planned, bytesRead))
	}
	if !o.Quick {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(o.Concurrency)
		for _, obj := range need {
			g.Go(func() error {
				r := checkSegment(gctx, o.Store, o.Crypt, obj)
				mu.Lock()
				segRes[obj.Name] = r
				mu.Unlock()
				count(r.stored)
				return gctx.Err()
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		rep.SegmentsChecked = len(need)
	}
	for i, f := range fs {
		if paths[i] != nil {
			judgeWAL(f, paths[i], ends[i], inv, segRes, o.Quick, &probs)
		}
		rep.Backups = append(rep.Backups, *f.rep)
	}
	rep.Problems = probs.sorted()
	rep.OK = len(rep.Problems) == 0
	rep.BytesRead = bytesRead
	rep.Seconds = time.Since(began).Seconds()
	return rep, nil
}

// readHeader decodes just the first page header of a segment object.
func readHeader(ctx context.Context, st storage.Store, crypt blob.Crypter, o walObject) (wal.SegmentHeader, bool) {
	rc, err := st.Get(ctx, o.Key)
	if err != nil {
		return wal.SegmentHeader{}, false
	}
	defer rc.Close()
	br, err := blob.NewReader(o.Key, rc, crypt)
	if err != nil {
		return wal.SegmentHeader{}, false
	}
	defer br.Close()
	buf := make([]byte, wal.LongHeaderSize)
	if _, err := io.ReadFull(br, buf); err != nil {
		return wal.SegmentHeader{}, false
	}
	h, err := wal.ParseSegmentHeader(buf)
	return h, err == nil && h.Check(o.Name) == nil
}

// judgeWAL walks a backup's segments from its start to the newest archived
// one, recording gaps, bad segments and the verdict.
func judgeWAL(f *facts, p []step, end uint64, inv *inventory, res map[string]segResult, quick bool, probs *problems) {
	r := f.rep
	for _, s := range p {
		r.TimelinePath = append(r.TimelinePath, s.TLI)
	}
	if newest, ok := inv.newestOnPath(p); ok {
		r.NewestArchived = inv.expected(p, newest)
	}
	add := func(object, format string, a ...any) {
		r.Problems = append(r.Problems, probs.add(object, format, a...))
	}
	firstBad := uint64(1<<63 - 1)
	var gapStart uint64
	inGap := false
	closeGap := func(n uint64) {
		if !inGap {
			return
		}
		inGap = false
		g := Gap{First: inv.expected(p, gapStart), Last: inv.expected(p, n-1), Count: n - gapStart}
		r.Gaps = append(r.Gaps, g)
		add(wal.Dir+g.First+".."+g.Last, "missing from the archive (%d segment(s)); recovery from %s stops before %s", g.Count, r.Name, g.First)
	}
	for n := f.start; n <= end; n++ {
		name := inv.expected(p, n)
		obj, ok := inv.segs[name]
		if !ok {
			if !inGap {
				inGap, gapStart = true, n
			}
			firstBad = min(firstBad, n)
			continue
		}
		closeGap(n)
		bad := false
		if sr, checked := res[name]; checked {
			switch {
			case sr.err != "":
				add(obj.Key, "%s", sr.err)
				bad = true
			case f.sysidKnown && sr.hdr.SysID != f.sysid:
				add(obj.Key, "is WAL of another cluster: system identifier %d, backup %s has %d", sr.hdr.SysID, r.Name, f.sysid)
				bad = true
			case f.major != 0 && majorOfMagic(sr.hdr.Magic) != f.major:
				add(obj.Key, "is WAL of PostgreSQL %d (page magic %#04x), backup %s is PostgreSQL %d", majorOfMagic(sr.hdr.Magic), sr.hdr.Magic, r.Name, f.major)
				bad = true
			}
		} else if !quick {
			bad = true
		}
		if bad {
			firstBad = min(firstBad, n)
			continue
		}
		if n < firstBad {
			r.NewestReachable = name
			t := obj.Modified.UTC()
			r.ReachableTime = &t
		}
	}
	closeGap(end + 1)
	r.Consistent = r.FilesOK && f.stopKnown && firstBad > f.stop
}

func majorOfMagic(m uint16) int {
	v, _ := wal.MajorForMagic(m)
	return v
}

// planBackup loads what the sentinel says and returns the partition reads.
func planBackup(ctx context.Context, o Options, b basebackup.Backup, f *facts, probs *problems) []partJob {
	type job = partJob
	s := b.Sentinel
	r := f.rep
	r.ExpandedBytes = s.ExpandedSizeBytes
	if s.SystemIdentifier != nil {
		f.sysid, f.sysidKnown = *s.SystemIdentifier, true
		r.SystemIdentifier = strconv.FormatUint(f.sysid, 10)
	}
	if s.PgVersion != 0 {
		f.major = majorOfNum(s.PgVersion)
	}
	var jobs []job
	dir := basebackup.PartitionDir(b.Name)
	if m := s.Walden; m != nil && len(m.Partitions) > 0 {
		r.Source = "walden"
		r.Partitions = len(m.Partitions)
		for _, p := range m.Partitions {
			key := dir + p.Name
			r.StoredBytes += p.StoredSize
			if strings.Contains(p.Name, "/") {
				f.rep.FilesOK = false
				r.Problems = append(r.Problems, probs.add(b.SentinelKey, "manifest names a bad partition %q", p.Name))
				continue
			}
			if o.Quick {
				jobs = append(jobs, job{f, key, func() partResult {
					obj, err := o.Store.Head(ctx, key)
					if err != nil {
						return partResult{err: missingOr(err)}
					}
					if obj.Size != p.StoredSize {
						return partResult{err: fmt.Sprintf("is %d bytes, the backup recorded %d (truncated or replaced)", obj.Size, p.StoredSize)}
					}
					return partResult{}
				}})
				continue
			}
			jobs = append(jobs, job{f, key, func() partResult { return checkPartitionHash(ctx, o.Store, key, p.StoredSize, p.SHA256) }})
		}
		return jobs
	}
	r.Source = "wal-e"
	objs, err := o.Store.List(ctx, dir)
	if err != nil {
		f.rep.FilesOK = false
		r.Problems = append(r.Problems, probs.add(dir, "cannot be listed: %v", err))
		return nil
	}
	seen := map[int]bool{}
	for _, obj := range objs {
		rest := strings.TrimPrefix(obj.Key, dir)
		var n int
		if _, err := fmt.Sscanf(rest, "part_%d.tar", &n); err != nil || strings.Contains(rest, "/") {
			continue
		}
		seen[n] = true
		r.Partitions++
		r.StoredBytes += obj.Size
		if o.Quick {
			continue
		}
		key := obj.Key
		jobs = append(jobs, job{f, key, func() partResult { return checkPartitionTar(ctx, o.Store, o.Crypt, key) }})
	}
	if r.Partitions == 0 {
		f.rep.FilesOK = false
		r.Problems = append(r.Problems, probs.add(dir, "backup %s has no partitions", b.Name))
	}
	for i := range len(seen) {
		if !seen[i] {
			f.rep.FilesOK = false
			r.Problems = append(r.Problems, probs.add(dir+basebackup.PartitionName(i, ".*"), "partition %d of %s is missing from the store", i, b.Name))
		}
	}
	if v, err := readAll(ctx, o.Store, basebackup.VersionKey(b.Name), nil, 4096); err == nil && f.major == 0 {
		f.major = majorOf(string(v))
	}
	return jobs
}

// planChain checks a delta's chain as a restore would before writing
// anything (sentinels, parent hashes, file lists, partitions listed), and
// returns the reads of its ancestors' partitions, judged as the delta's
// own: a delta is only as good as every member of its chain.
func planChain(ctx context.Context, o Options, all []basebackup.Backup, b basebackup.Backup, f *facts, probs *problems) ([]partJob, int64) {
	idx := -1
	for i := range all {
		if all[i].SentinelKey == b.SentinelKey {
			idx = i
		}
	}
	if idx < 0 {
		f.rep.FilesOK = false
		f.rep.Problems = append(f.rep.Problems, probs.add(b.SentinelKey, "delta %s is no longer listed", b.Name))
		return nil, 0
	}
	c, err := basebackup.LoadChain(ctx, o.Store, o.Crypt, all, idx, o.Concurrency)
	if err != nil {
		f.rep.FilesOK = false
		f.rep.Problems = append(f.rep.Problems, probs.add(b.SentinelKey, "%v", err))
		return nil, 0
	}
	var jobs []partJob
	var n int64
	for _, m := range c.Members[:len(c.Members)-1] {
		f.rep.Chain = append(f.rep.Chain, m.Name)
		ff := &facts{rep: &BackupReport{}}
		for _, j := range planBackup(ctx, o, m, ff, probs) {
			j.f = f
			jobs = append(jobs, j)
		}
		n += ff.rep.StoredBytes
	}
	return jobs, n
}

// finishBackup turns partition results into problems and settles where
// the backup's WAL starts and stops.
func finishBackup(ctx context.Context, o Options, b basebackup.Backup, f *facts, parts []partResult, inv *inventory, probs *problems) {
	r := f.rep
	if b.Sentinel == nil {
		return
	}
	s := b.Sentinel
	dir := basebackup.PartitionDir(b.Name)
	var ctrl, lbl, ver []byte
	hasCtrl := false
	for _, pr := range parts {
		if pr.err != "" {
			r.FilesOK = false
			r.Problems = append(r.Problems, probs.add(pr.key, "%s", pr.err))
		}
		if pr.hasCtrl {
			ctrl, hasCtrl = pr.control, true
		}
		if pr.hasLabel {
			lbl = pr.label
		}
		if pr.version != nil {
			ver = pr.version
		}
	}
	_ = ctx
	if f.major == 0 && ver != nil {
		f.major = majorOf(string(ver))
	}
	r.Major = f.major
	if r.Source == "wal-e" && !o.Quick && r.FilesOK && !hasCtrl {
		r.FilesOK = false
		r.Problems = append(r.Problems, probs.add(dir, "no partition of %s holds global/pg_control", b.Name))
	}

	// Where the WAL starts: walden's manifest, else backup_label, else
	// pg_control (offline backups), else the backup's name.
	if m := s.Walden; m != nil && m.StartLSN != "" && m.Timeline != 0 {
		if lsn, err := basebackup.ParseLSN(m.StartLSN); err == nil {
			f.tli, f.start, f.startKnown = m.Timeline, uint64(lsn)/inv.segSize, true
		}
	}
	var cd control
	cdOK := false
	if ctrl != nil {
		if c, err := parseControl(ctrl); err == nil {
			cd, cdOK = c, true
			if !f.sysidKnown {
				f.sysid, f.sysidKnown = c.SysID, true
			}
		} else {
			r.Problems = append(r.Problems, probs.add(dir, "global/pg_control of %s: %v", b.Name, err))
			r.FilesOK = false
		}
	}
	offline := false
	if !f.startKnown && lbl != nil {
		if l, err := parseLabel(lbl); err == nil {
			if tli, n, ok := inv.segnoOf(l.File); ok {
				f.tli, f.start, f.startKnown = tli, n, true
			}
		}
	}
	if !f.startKnown && cdOK {
		f.tli, f.start, f.startKnown = cd.Timeline, cd.Redo/inv.segSize, true
		offline = cd.State == dbShutdowned
	}
	if !f.startKnown {
		seg, _, _ := basebackup.StartSegment(b.Name)
		if r.Source == "wal-e" && seg[16:24] == b.Name[len(b.Name)-8:] && (s.StopSegment == "" || s.StopSegment == seg) {
			// WAL-E named offline backups after a misread REDO location.
			r.Note = "start unknown without reading the backup (a WAL-E offline backup; verify without --quick)"
			return
		}
		if tli, n, ok := inv.segnoOf(seg); ok {
			f.tli, f.start, f.startKnown = tli, n, true
		}
	}
	if m := s.Walden; m != nil && m.Offline {
		offline = true
	}
	switch {
	case offline:
		// A cleanly stopped cluster is consistent at its checkpoint.
		f.stop, f.stopKnown = f.start, true
	case s.StopSegment != "":
		if _, n, ok := inv.segnoOf(s.StopSegment); ok {
			f.stop, f.stopKnown = n, true
		}
	}
	if f.stopKnown && f.stop < f.start {
		f.stop = f.start
	}
	if !f.stopKnown {
		r.Problems = append(r.Problems, probs.add(b.SentinelKey, "the sentinel does not say where backup %s ends", b.Name))
	}
	r.Timeline = f.tli
	r.StartSegment = inv.name(f.tli, f.start)
	if f.stopKnown {
		r.StopSegment = inv.name(f.tli, f.stop)
	}
	if f.sysidKnown {
		r.SystemIdentifier = strconv.FormatUint(f.sysid, 10)
	}
}

// prepare lists the WAL, learns the segment size from the first segment
// header that reads, and reads the timeline history files.
func prepare(ctx context.Context, o Options, probs *problems) (*inventory, map[uint32][]histEntry, error) {
	inv, err := listWAL(ctx, o.Store)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(inv.segs))
	for n := range inv.segs {
		names = append(names, n)
	}
	sort.Strings(names)
	for i := 0; i < len(names) && i < 3; i++ {
		if h, ok := readHeader(ctx, o.Store, o.Crypt, inv.segs[names[i]]); ok && h.SegSize != 0 {
			inv.segSize = uint64(h.SegSize)
			break
		}
	}
	inv.index()
	hist := map[uint32][]histEntry{}
	for tli, ho := range inv.histories {
		b, err := readAll(ctx, o.Store, ho.Key, o.Crypt, 16<<20)
		if err == nil {
			var h []histEntry
			if h, err = parseHistory(b); err == nil {
				hist[tli] = h
				continue
			}
		}
		probs.add(ho.Key, "does not decode: %s", trimKey(err, ho.Key))
	}
	for tli, segs := range inv.byTLI {
		if _, ok := inv.histories[tli]; tli > 1 && !ok && len(segs) > 0 {
			probs.add(wal.Dir+fmt.Sprintf("%08X.history", tli), "missing: timeline %d has archived segments from %s on, but without its history file recovery cannot switch to it",
				tli, inv.name(tli, segs[0]))
		}
	}
	return inv, hist, nil
}
