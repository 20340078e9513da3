package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/walden-pg/walden/wal"
)

// PrefetchSource is one store prefix the agent fetches WAL ahead from.
type PrefetchSource struct {
	// Key names the prefix's cache directory (a hash of its URL): a
	// segment fetched from one archive is never served for another.
	Key string
	// Fetch writes the decoded content of seg to w, checked as wal-fetch
	// checks it; it fails with an error NotFound recognises when the store
	// does not hold seg.
	Fetch    func(ctx context.Context, seg string, w io.Writer) error
	NotFound func(error) bool
}

// notFoundMemory is how long "the archive ends here" is believed for
// prefetching: a standby at the end of the archive asks for the next
// segment every few seconds, and its prefetches must not re-ask the store
// for every later name each time.
const notFoundMemory = 2 * time.Second

// DefaultPrefetchBytes bounds the prefetch cache when nothing else is set.
const DefaultPrefetchBytes = 1 << 30

// idleAfter is how long a cache no request has used is kept: the files
// fetched ahead, and the copy of the archive's last segment kept for
// PostgreSQL's second request, go once replay has stopped asking (a
// promotion, or a standby that streams again). A standby still restoring
// from the archive asks every few seconds, which keeps its cache.
const idleAfter = 5 * time.Minute

// takeWait bounds how long a request waits for its segment's prefetch in
// flight; after it, the request fetches the segment itself (a miss), on
// fresh connections, while the stalled prefetch goes on or fails.
const takeWait = time.Minute

// Prefetcher fetches the segments that follow the ones replay asks for
// into a private on-disk cache, as goroutines of the agent. How many it
// keeps in flight follows the store's latency and the replay's pace:
// enough that (segments ahead) x (time between requests) covers a fetch,
// at least 1 and at most the request's -p.
type Prefetcher struct {
	root     string
	maxBytes int64
	takeWait time.Duration
	idle     time.Duration

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the fetches
	sweeper chan struct{}  // closed when dropIdle's loop has stopped

	mu      sync.Mutex
	caches  map[string]*prefetchCache
	lat     ewma // seconds a whole fetch takes
	gap     ewma // seconds between requests for consecutive segments
	lastSeg string
	lastAt  time.Time
	segSize int64 // of the last completed fetch: the estimate for those in flight
	closed  bool

	started atomic.Int64

	depth    prometheus.Gauge
	hits     prometheus.Counter
	misses   prometheus.Counter
	waitSec  prometheus.Counter
	fetchSec prometheus.Histogram
}

type prefetchCache struct {
	dir      string
	entries  map[string]*prefetchEntry
	endAt    string // lowest segment found missing recently
	endUntil time.Time
	kept     string // the segment Keep last copied
	usedAt   time.Time
}

type prefetchEntry struct {
	done     chan struct{}
	cancel   context.CancelFunc
	path     string // set when done without error
	size     int64
	err      error
	failedAt time.Time
}

type ewma struct {
	v  float64
	ok bool
}

func (e *ewma) add(x float64) {
	const alpha = 0.3
	if !e.ok {
		e.v, e.ok = x, true
		return
	}
	e.v = alpha*x + (1-alpha)*e.v
}

// NewPrefetcher prepares a cache under root/walden-prefetch-<uid> (made
// 0700; refused when another user owns it), bounded to maxBytes.
func NewPrefetcher(root string, maxBytes int64) (*Prefetcher, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultPrefetchBytes
	}
	dir := filepath.Join(root, "walden-prefetch-"+strconv.Itoa(os.Getuid()))
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return nil, err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() || fileUID(fi) != os.Getuid() {
		return nil, fmt.Errorf("%s is not a directory of uid %d", dir, os.Getuid())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, err
		}
	}
	p := &Prefetcher{root: dir, maxBytes: maxBytes, takeWait: takeWait, idle: idleAfter, caches: map[string]*prefetchCache{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.sweeper = make(chan struct{})
	go func() {
		defer close(p.sweeper)
		t := time.NewTicker(idleAfter / 5)
		defer t.Stop()
		for {
			select {
			case <-p.ctx.Done():
				return
			case now := <-t.C:
				p.dropIdle(now)
			}
		}
	}()
	p.depth = prometheus.NewGauge(prometheus.GaugeOpts{Name: "walden_wal_prefetch_depth",
		Help: "Segments the agent keeps in flight ahead of replay (adapts to the store's latency and the replay's pace, at most wal-fetch's -p)."})
	p.hits = prometheus.NewCounter(prometheus.CounterOpts{Name: "walden_wal_prefetch_hits_total",
		Help: "wal-fetch calls for a segment served from the agent's prefetch cache."})
	p.misses = prometheus.NewCounter(prometheus.CounterOpts{Name: "walden_wal_prefetch_misses_total",
		Help: "wal-fetch calls for a segment the agent's prefetch cache did not hold."})
	p.waitSec = prometheus.NewCounter(prometheus.CounterOpts{Name: "walden_wal_prefetch_wait_seconds_total",
		Help: "Time wal-fetch calls spent waiting for a prefetch still in flight: replay waiting for the store despite prefetching (the depth did not cover the store's latency)."})
	p.fetchSec = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "walden_wal_fetch_seconds",
		Help:    "Time the agent took to fetch one WAL file from the store, whole (prefetches and direct fetches).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}})
	p.removeStale()
	return p, nil
}

// removeStale removes caches left by agents that are gone (their
// directories end in the pid that made them).
func (p *Prefetcher) removeStale() {
	ents, _ := os.ReadDir(p.root)
	for _, e := range ents {
		_, pid, ok := strings.Cut(e.Name(), ".")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", n)); err == nil {
				continue
			}
		}
		os.RemoveAll(filepath.Join(p.root, e.Name()))
	}
}

func (p *Prefetcher) register(reg *prometheus.Registry) {
	reg.MustRegister(p.depth, p.hits, p.misses, p.waitSec, p.fetchSec)
}

// Started is how many prefetches this prefetcher started, all as
// goroutines.
func (p *Prefetcher) Started() int64 { return p.started.Load() }

// Observe records the duration of a fetch done outside the prefetcher.
func (p *Prefetcher) Observe(d time.Duration) {
	p.fetchSec.Observe(d.Seconds())
	p.mu.Lock()
	p.lat.add(d.Seconds())
	p.mu.Unlock()
}

// Served records that the request for seg has been answered. The time
// from then to the request for the next segment is replay's own pace
// (redo), which the depth must cover; the time a request spent waiting for
// its fetch is not, or a store slower than replay would shrink the depth
// that should hide it.
func (p *Prefetcher) Served(seg string) {
	p.mu.Lock()
	if p.lastSeg == seg {
		p.lastAt = time.Now()
	}
	p.mu.Unlock()
}

// Miss counts a request for a segment the cache could not serve.
func (p *Prefetcher) Miss() { p.misses.Inc() }

// depthFor is how many segments to keep ahead with the -p ceiling n.
func (p *Prefetcher) depthFor(n int) int {
	if !p.lat.ok || !p.gap.ok {
		return n // nothing measured yet: start as WAL-E did
	}
	d := n
	if p.gap.v > 0 {
		d = int(math.Ceil(p.lat.v/p.gap.v)) + 1
	}
	return max(1, min(d, n))
}

func (p *Prefetcher) cache(key string) (*prefetchCache, error) {
	if c := p.caches[key]; c != nil {
		return c, nil
	}
	dir := filepath.Join(p.root, key+"."+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return nil, err
	}
	c := &prefetchCache{dir: dir, entries: map[string]*prefetchEntry{}, usedAt: time.Now()}
	p.caches[key] = c
	return c, nil
}

// dropIdle removes the caches no request has used for p.idle by now.
func (p *Prefetcher) dropIdle(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.caches {
		if now.Sub(c.usedAt) >= p.idle {
			p.dropCache(k, c)
		}
	}
}

// Want records that replay asked for seg with the ceiling n (-p), drops
// what replay has moved past, and starts fetching the segments after seg
// that are not cached or in flight.
func (p *Prefetcher) Want(src PrefetchSource, seg string, n int) {
	cur, err := wal.ParseSegment(seg)
	if err != nil || len(seg) != 24 || n <= 0 {
		return
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if prev, err := wal.ParseSegment(p.lastSeg); err == nil && prev.Next() == cur {
		p.gap.add(now.Sub(p.lastAt).Seconds())
	}
	p.lastSeg, p.lastAt = seg, now
	p.dropOtherCaches(src.Key)
	c, err := p.cache(src.Key)
	if err != nil {
		return
	}
	c.usedAt = now
	future := wal.Future(seg, n)
	// Replay moved on: what is behind seg or beyond the window goes. A
	// segment of another timeline at the same place stays: PostgreSQL asks
	// for each timeline of its history in turn.
	for name, e := range c.entries {
		if name == seg || contains(future, name) || (name[:8] != seg[:8] && (name[8:] == seg[8:] || containsPos(future, name[8:]))) {
			continue
		}
		if name == c.kept && wal.Future(name, 1)[0] == seg {
			continue // asked past the end first, then for it again
		}
		p.drop(c, name, e)
	}
	p.fill(src, c, seg, n, future)
}

// Expect starts fetching seg and the segments after it before replay
// asks for any segment of this archive: seg is where recovery will start
// (backup_label names it), and PostgreSQL asks for it right after its
// timeline history probes. Without this, that first fetch and the ramp of
// the next ones each cost replay a round trip to a distant store. Once
// replay has asked for a segment (the cache exists) it does nothing; a
// wrong guess costs only the fetches, which Want drops as replay moves.
func (p *Prefetcher) Expect(src PrefetchSource, seg string, n int) {
	if _, err := wal.ParseSegment(seg); err != nil || len(seg) != 24 || n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.caches[src.Key] != nil {
		return
	}
	p.dropOtherCaches(src.Key)
	c, err := p.cache(src.Key)
	if err != nil {
		return
	}
	p.fill(src, c, seg, n, append([]string{seg}, wal.Future(seg, n-1)...))
}

// Fill starts what Want would have started but the byte bound held back
// while seg's own copy was still in the cache: call it once that copy is
// served and removed.
func (p *Prefetcher) Fill(src PrefetchSource, seg string, n int) {
	if _, err := wal.ParseSegment(seg); err != nil || len(seg) != 24 || n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if c := p.caches[src.Key]; c != nil {
		p.fill(src, c, seg, n, wal.Future(seg, n))
	}
}

func (p *Prefetcher) fill(src PrefetchSource, c *prefetchCache, seg string, n int, future []string) {
	if c.endAt != "" && time.Now().After(c.endUntil) {
		c.endAt = ""
	}
	depth := p.depthFor(n)
	p.depth.Set(float64(depth))
	used, inFlight := int64(0), int64(0)
	for _, e := range c.entries {
		select {
		case <-e.done:
			used += e.size
		default:
			inFlight++
		}
	}
	est := p.segSize
	if est <= 0 {
		est = 16 << 20
	}
	for _, f := range future[:depth] {
		if e, ok := c.entries[f]; ok {
			if e.err == nil || time.Since(e.failedAt) < notFoundMemory {
				continue
			}
			// Failed a while ago: it may be in the store by now.
			delete(c.entries, f)
		}
		if c.endAt != "" && f[:8] == c.endAt[:8] && f >= c.endAt {
			break // the archive ended there a moment ago
		}
		if used+(inFlight+1)*est > p.maxBytes {
			break
		}
		inFlight++
		p.start(src, c, f)
	}
}

// containsPos: list holds a segment at position pos (a name without its
// timeline).
func containsPos(list []string, pos string) bool {
	for _, x := range list {
		if x[8:] == pos {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// dropOtherCaches removes the caches of other store prefixes: replay
// reads one archive, and a reload that changed the prefix leaves the old
// one's cache behind. Its directory goes once its fetches have stopped.
func (p *Prefetcher) dropOtherCaches(key string) {
	for k, c := range p.caches {
		if k != key {
			p.dropCache(k, c)
		}
	}
}

// dropCache forgets the cache c of key, stopping its fetches; its
// directory goes once they have stopped. The caller holds p.mu.
func (p *Prefetcher) dropCache(key string, c *prefetchCache) {
	delete(p.caches, key)
	var pending []*prefetchEntry
	for name, e := range c.entries {
		delete(c.entries, name)
		e.cancel()
		pending = append(pending, e)
	}
	go func() {
		for _, e := range pending {
			<-e.done
		}
		os.RemoveAll(c.dir)
	}()
}

// drop forgets an entry, stopping its fetch or removing its file.
func (p *Prefetcher) drop(c *prefetchCache, name string, e *prefetchEntry) {
	delete(c.entries, name)
	e.cancel()
	go func() {
		<-e.done
		if e.path != "" {
			os.Remove(e.path)
		}
	}()
}

func (p *Prefetcher) start(src PrefetchSource, c *prefetchCache, seg string) {
	ctx, cancel := context.WithCancel(p.ctx)
	e := &prefetchEntry{done: make(chan struct{}), cancel: cancel}
	c.entries[seg] = e
	p.started.Add(1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(e.done)
		defer cancel()
		begin := time.Now()
		path, size, err := fetchInto(ctx, src, c.dir, seg)
		p.mu.Lock()
		defer p.mu.Unlock()
		e.path, e.size, e.err, e.failedAt = path, size, err, time.Now()
		if err == nil {
			d := time.Since(begin)
			p.fetchSec.Observe(d.Seconds())
			p.lat.add(d.Seconds())
			p.segSize = size
			return
		}
		if src.NotFound != nil && src.NotFound(err) && ctx.Err() == nil {
			if c.endAt == "" || seg[:8] != c.endAt[:8] || seg < c.endAt || time.Now().After(c.endUntil) {
				c.endAt = seg
			}
			c.endUntil = time.Now().Add(notFoundMemory)
		}
	}()
}

// fetchInto writes seg into dir through a temporary name, then renamed:
// what is under seg's own name is whole and was checked. Not synced: the
// cache serves only the agent that wrote it (after a crash the next agent
// removes it unread), and PostgreSQL needs no durability of what
// restore_command gives it.
func fetchInto(ctx context.Context, src PrefetchSource, dir, seg string) (string, int64, error) {
	tmp, err := os.CreateTemp(dir, ".tmp-"+seg+"-*")
	if err != nil {
		return "", 0, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := src.Fetch(ctx, seg, bw); err != nil {
		return "", 0, err
	}
	if err := bw.Flush(); err != nil {
		return "", 0, err
	}
	fi, err := tmp.Stat()
	if err != nil {
		return "", 0, err
	}
	if err := tmp.Close(); err != nil {
		return "", 0, err
	}
	path := filepath.Join(dir, seg)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", 0, err
	}
	ok = true
	return path, fi.Size(), nil
}

// Absent tells whether a prefetch found seg, or a segment before it in
// the same series, missing from the store within the last
// notFoundMemory. It is a hint for how to ask the store (both questions
// at once), never an answer: the store is asked again.
func (p *Prefetcher) Absent(key, seg string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.caches[key].absent(seg)
}

// absent is Absent on one cache (nil: none); the caller holds p.mu.
func (c *prefetchCache) absent(seg string) bool {
	if c == nil || c.endAt == "" || time.Now().After(c.endUntil) || len(seg) != len(c.endAt) {
		return false
	}
	return seg[:8] == c.endAt[:8] && seg >= c.endAt
}

// MayEndAt tells whether the archive may end at seg, the segment after
// the one about to be served: a prefetch found it missing a moment ago,
// or its fetch is still in flight. Fetches ahead finish before replay
// needs them, and an absent segment's lookup takes longer than a stored
// one's, so at the end of the archive the last one's successor is often
// still being looked up when the last is served.
func (p *Prefetcher) MayEndAt(key, seg string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.caches[key]
	if c.absent(seg) {
		return true
	}
	if c == nil || c.entries[seg] == nil {
		return false
	}
	select {
	case <-c.entries[seg].done:
		return false
	default:
		return true
	}
}

// Keep copies the cached file at path, seg's, which is about to be
// handed over, so that the cache can serve seg once more: PostgreSQL asks
// for the archive's last segment again at the end of recovery, and what
// it was given is by then its own file in pg_wal (renamed, and recycled
// later), never to be shared. The caller keeps only the segment before
// one MayEndAt. The copy is made once per segment and
// goes as the others do: served, or passed by replay.
func (p *Prefetcher) Keep(key, seg, path string) {
	p.mu.Lock()
	c := p.caches[key]
	if c == nil || p.closed || c.kept == seg || c.entries[seg] != nil {
		p.mu.Unlock()
		return
	}
	c.kept = seg
	p.mu.Unlock()
	kept := path + ".kept"
	size, err := copyFile(path, kept)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil || p.closed || p.caches[key] != c || c.entries[seg] != nil {
		os.Remove(kept)
		return
	}
	done := make(chan struct{})
	close(done)
	c.entries[seg] = &prefetchEntry{done: done, cancel: func() {}, path: kept, size: size}
}

// copyFile copies src to dst, in the kernel where it can.
func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return n, err
}

// Take hands over the cached copy of seg, waiting for its fetch when one
// is in flight; the caller checks it, serves it and removes it. ok is
// false when the cache cannot serve seg (counted as a miss).
func (p *Prefetcher) Take(ctx context.Context, key, seg string) (path string, ok bool) {
	p.mu.Lock()
	c := p.caches[key]
	var e *prefetchEntry
	if c != nil {
		e = c.entries[seg]
	}
	p.mu.Unlock()
	if e == nil {
		p.misses.Inc()
		return "", false
	}
	select {
	case <-e.done:
	default:
		begin := time.Now()
		defer func() { p.waitSec.Add(time.Since(begin).Seconds()) }()
	}
	wait := time.NewTimer(p.takeWait)
	defer wait.Stop()
	select {
	case <-e.done:
	case <-ctx.Done():
		p.misses.Inc()
		return "", false
	case <-wait.C:
		p.misses.Inc()
		return "", false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.entries[seg] == e {
		delete(c.entries, seg)
	} else {
		// Dropped meanwhile: its file goes with it.
		p.misses.Inc()
		return "", false
	}
	if e.err != nil || e.path == "" {
		p.misses.Inc()
		return "", false
	}
	p.hits.Inc()
	return e.path, true
}

// Close stops the prefetches and removes the cache.
func (p *Prefetcher) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	<-p.sweeper
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.caches {
		os.RemoveAll(c.dir)
	}
	p.caches = map[string]*prefetchCache{}
}

func fileUID(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
