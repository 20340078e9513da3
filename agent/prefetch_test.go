package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var errAbsent = errors.New("absent")

// memSource serves segments up to last from memory, after delay, and
// counts the requests per segment.
type memSource struct {
	mu    sync.Mutex
	calls map[string]int
	last  string
	delay time.Duration
}

func (m *memSource) src() PrefetchSource {
	return PrefetchSource{Key: "p-test", NotFound: func(err error) bool { return errors.Is(err, errAbsent) },
		Fetch: func(ctx context.Context, seg string, w io.Writer) error {
			m.mu.Lock()
			m.calls[seg]++
			m.mu.Unlock()
			select {
			case <-time.After(m.delay):
			case <-ctx.Done():
				return ctx.Err()
			}
			if seg > m.last {
				return errAbsent
			}
			_, err := w.Write(bytes.Repeat([]byte(seg[16:]), 1024))
			return err
		}}
}

func (m *memSource) count(seg string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[seg]
}

func seg(n int) string {
	return "0000000100000000" + []string{"00000001", "00000002", "00000003", "00000004", "00000005", "00000006", "00000007", "00000008", "00000009", "0000000A", "0000000B", "0000000C"}[n-1]
}

func newTestPrefetcher(t *testing.T, maxBytes int64) *Prefetcher {
	t.Helper()
	p, err := NewPrefetcher(t.TempDir(), maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestPrefetchDepthCoversTheFetchLatencyWithinTheCeiling pins the adaptive
// depth: segments ahead x time between requests covers a fetch, at least
// 1, at most -p.
func TestPrefetchDepthCoversTheFetchLatencyWithinTheCeiling(t *testing.T) {
	p := newTestPrefetcher(t, 0)
	if d := p.depthFor(8); d != 8 {
		t.Errorf("nothing measured: depth %d, want the ceiling 8", d)
	}
	for _, c := range []struct {
		lat, gap float64
		n, want  int
	}{
		{0.2, 0.05, 8, 5},   // 200 ms store, a segment every 50 ms: 4 in flight + 1
		{0.2, 0.01, 8, 8},   // faster replay than 8 can cover: capped
		{0.01, 1, 8, 2},     // fast store, slow replay
		{0.2, 0.05, 1, 1},   // -p 1
		{0.001, 10, 3, 2},   // never below 1 ahead plus the next
		{0.5, 0.05, 16, 11}, // a higher ceiling lets it grow
	} {
		p.lat, p.gap = ewma{c.lat, true}, ewma{c.gap, true}
		if d := p.depthFor(c.n); d != c.want {
			t.Errorf("latency %vs, %vs between requests, -p %d: depth %d, want %d", c.lat, c.gap, c.n, d, c.want)
		}
	}
}

// TestPrefetchPastTheEndOfTheArchiveIsAskedOnceNotInALoop: a standby at
// the end of the archive asks again and again; the names past the end are
// asked of the store once, then only after the memory expires.
func TestPrefetchPastTheEndOfTheArchiveIsAskedOnceNotInALoop(t *testing.T) {
	p := newTestPrefetcher(t, 0)
	m := &memSource{calls: map[string]int{}, last: seg(3)}
	src := m.src()
	p.Want(src, seg(3), 4)
	p.wg.Wait()
	for i := 0; i < 50; i++ {
		p.Want(src, seg(3), 4)
		p.Take(context.Background(), src.Key, seg(3))
	}
	p.wg.Wait()
	if n := m.count(seg(4)); n != 1 {
		t.Errorf("%s (the first missing) asked %d times, want 1", seg(4), n)
	}
	if n := m.count(seg(5)); n > 1 {
		t.Errorf("%s (beyond the end) asked %d times, want at most 1", seg(5), n)
	}
	// Once archived, it is fetched ahead again after the memory expires.
	m.mu.Lock()
	m.last = seg(4)
	m.mu.Unlock()
	time.Sleep(notFoundMemory + 100*time.Millisecond)
	p.Want(src, seg(3), 4)
	if _, ok := p.Take(context.Background(), src.Key, seg(4)); !ok {
		t.Errorf("%s, archived meanwhile, was not fetched ahead again", seg(4))
	}
}

// TestPrefetchServesCachedSegmentsAndDropsWhatReplayPassed: hits for what
// was fetched ahead, the window follows the requests, -p 0 fetches nothing,
// and Close removes the cache.
func TestPrefetchServesCachedSegmentsAndDropsWhatReplayPassed(t *testing.T) {
	p := newTestPrefetcher(t, 0)
	m := &memSource{calls: map[string]int{}, last: seg(12)}
	src := m.src()
	p.Want(src, seg(1), 0)
	p.wg.Wait()
	if n := p.Started(); n != 0 {
		t.Fatalf("-p 0 started %d prefetches", n)
	}
	p.Want(src, seg(1), 3)
	for i := 2; i <= 4; i++ {
		path, ok := p.Take(context.Background(), src.Key, seg(i))
		if !ok {
			t.Fatalf("%s not served from the cache", seg(i))
		}
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(b, bytes.Repeat([]byte(seg(i)[16:]), 1024)) {
			t.Fatalf("%s: cached content wrong (%v)", seg(i), err)
		}
		os.Remove(path)
		p.Want(src, seg(i), 3)
	}
	// Jump ahead: what is behind is dropped.
	p.Want(src, seg(10), 2)
	p.wg.Wait()
	time.Sleep(50 * time.Millisecond) // dropped files go in the background
	files, _ := filepath.Glob(filepath.Join(p.root, "p-test.*", "0*"))
	for _, f := range files {
		if b := filepath.Base(f); b != seg(11) && b != seg(12) {
			t.Errorf("%s still cached after replay moved to %s", b, seg(10))
		}
	}
	if _, ok := p.Take(context.Background(), src.Key, seg(5)); ok {
		t.Errorf("%s served after it was dropped", seg(5))
	}
	root := p.root
	p.Close()
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("Close left %v", ents)
	}
}

// TestPrefetchCacheDirectoryIsPrivate: 0700, and another user's directory
// is refused rather than used.
func TestPrefetchCacheDirectoryIsPrivate(t *testing.T) {
	root := t.TempDir()
	p2, err := NewPrefetcher(root, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	fi, err := os.Stat(p2.root)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache root %s: %v %v, want 0700", p2.root, fi.Mode(), err)
	}
	if os.Getuid() == 0 {
		other := t.TempDir()
		d := filepath.Join(other, "walden-prefetch-0")
		os.Mkdir(d, 0o700)
		os.Chown(d, 12345, 12345)
		if _, err := NewPrefetcher(other, 0); err == nil {
			t.Errorf("a cache directory owned by another user was accepted")
		}
	}
}

// TestPrefetchTakeGivesUpOnAStalledPrefetch: a request whose segment's
// prefetch is stuck gets a miss after the wait bound (and fetches it
// itself), instead of waiting as long as the store stalls.
func TestPrefetchTakeGivesUpOnAStalledPrefetch(t *testing.T) {
	p := newTestPrefetcher(t, 0)
	p.takeWait = 100 * time.Millisecond
	m := &memSource{calls: map[string]int{}, last: seg(12), delay: time.Hour}
	src := m.src()
	p.Want(src, seg(1), 2)
	begin := time.Now()
	if _, ok := p.Take(context.Background(), src.Key, seg(2)); ok {
		t.Fatal("a stalled prefetch was served")
	}
	if d := time.Since(begin); d > 30*time.Second {
		t.Fatalf("Take waited %v", d)
	}
	p.Close()
}

// TestPrefetchCacheOfAnOldPrefixIsRemovedWhenReplayMovesToAnother: after
// a reload that changed the store prefix, the old prefix's cache directory
// and files go with the first request for the new one.
func TestPrefetchCacheOfAnOldPrefixIsRemovedWhenReplayMovesToAnother(t *testing.T) {
	p := newTestPrefetcher(t, 0)
	defer p.Close()
	m := &memSource{calls: map[string]int{}, last: seg(12)}
	old := m.src()
	p.Want(old, seg(1), 3)
	p.wg.Wait()
	if files, _ := filepath.Glob(filepath.Join(p.root, "p-test.*", "0*")); len(files) == 0 {
		t.Fatal("nothing cached for the first prefix")
	}
	next := m.src()
	next.Key = "p-next"
	p.Want(next, seg(1), 3)
	p.wg.Wait()
	for i := 0; i < 200; i++ {
		if dirs, _ := filepath.Glob(filepath.Join(p.root, "p-test.*")); len(dirs) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if dirs, _ := filepath.Glob(filepath.Join(p.root, "p-test.*")); len(dirs) != 0 {
		t.Fatalf("the old prefix's cache is still there: %v", dirs)
	}
	if _, ok := p.Take(context.Background(), next.Key, seg(2)); !ok {
		t.Fatal("the new prefix's cache does not serve")
	}
}

// TestPrefetchReplayPaceExcludesTheWaitForFetches: the time between
// requests counts from the previous answer, so a replay that waited for
// a slow store still shows its own pace, and the depth grows to hide the
// store rather than shrink to match it.
func TestPrefetchReplayPaceExcludesTheWaitForFetches(t *testing.T) {
	p := newTestPrefetcher(t, 0)
	defer p.Close()
	m := &memSource{calls: map[string]int{}, last: seg(12)}
	src := m.src()
	p.Want(src, seg(1), 1)
	time.Sleep(200 * time.Millisecond) // waiting for a slow fetch
	p.Served(seg(1))
	time.Sleep(20 * time.Millisecond) // redo
	p.Want(src, seg(2), 1)
	p.mu.Lock()
	gap := p.gap.v
	p.mu.Unlock()
	if gap <= 0 || gap > 0.15 {
		t.Fatalf("replay pace %.3fs; want about the 0.02s between the answer and the next request", gap)
	}
}

// TestPrefetchTellsWhereTheArchiveEndedAMomentAgo: after a prefetch found
// a segment missing, Absent says so for it and what follows in the same
// series, not for what came before or another timeline, and no longer
// once the memory expires.
func TestPrefetchTellsWhereTheArchiveEndedAMomentAgo(t *testing.T) {
	p := newTestPrefetcher(t, 0)
	m := &memSource{calls: map[string]int{}, last: seg(3)}
	src := m.src()
	if p.Absent(src.Key, seg(4)) {
		t.Fatal("absent before anything was asked")
	}
	p.Want(src, seg(2), 4)
	p.wg.Wait()
	for _, c := range []struct {
		seg  string
		want bool
	}{{seg(3), false}, {seg(4), true}, {seg(5), true}, {"0000000200000000" + seg(4)[16:], false}, {"00000002.history", false}} {
		if got := p.Absent(src.Key, c.seg); got != c.want {
			t.Errorf("Absent(%s) = %t, want %t", c.seg, got, c.want)
		}
	}
	if p.Absent("p-other", seg(4)) {
		t.Error("absent under another prefix")
	}
	time.Sleep(notFoundMemory + 100*time.Millisecond)
	if p.Absent(src.Key, seg(4)) {
		t.Error("still absent after the memory expired")
	}
}

// takeTheLastSegment serves, from a prefetch, the last segment of an
// archive that ends at seg(3), as replay reaches it.
func takeTheLastSegment(t *testing.T) (*Prefetcher, *memSource, PrefetchSource, string) {
	t.Helper()
	p := newTestPrefetcher(t, 0)
	m := &memSource{calls: map[string]int{}, last: seg(3)}
	src := m.src()
	p.Want(src, seg(2), 4)
	p.wg.Wait()
	p.Want(src, seg(3), 4)
	path, ok := p.Take(context.Background(), src.Key, seg(3))
	if !ok {
		t.Fatal("the archive's last segment missed the cache")
	}
	return p, m, src, path
}

// TestPrefetchKeepsTheLastSegmentForPostgreSQLsSecondRequest: at the end
// of recovery PostgreSQL asks for the segment after the archive's last,
// then for the last again; the kept copy serves that second request with
// the same bytes although the first file went to the client, and it is
// copied once.
func TestPrefetchKeepsTheLastSegmentForPostgreSQLsSecondRequest(t *testing.T) {
	p, m, src, path := takeTheLastSegment(t)
	if !p.Absent(src.Key, seg(4)) {
		t.Fatal("the segment after the archive's last is not known absent")
	}
	want, _ := os.ReadFile(path)
	p.Keep(src.Key, seg(3), path)
	os.Remove(path) // handed over: PostgreSQL's now
	p.Want(src, seg(4), 4)
	if _, ok := p.Take(context.Background(), src.Key, seg(4)); ok {
		t.Fatal("the missing segment was served")
	}
	p.Want(src, seg(3), 4)
	again, ok := p.Take(context.Background(), src.Key, seg(3))
	if !ok {
		t.Fatal("the last segment's second request missed the cache")
	}
	if got, _ := os.ReadFile(again); !bytes.Equal(got, want) || again == path {
		t.Fatalf("second copy %s differs from the first %s", again, path)
	}
	p.Keep(src.Key, seg(3), again)
	if _, err := os.Stat(again + ".kept"); !os.IsNotExist(err) {
		t.Error("the last segment was copied twice")
	}
	if n := m.count(seg(3)); n != 1 {
		t.Errorf("%s fetched %d times, want 1", seg(3), n)
	}
}

// TestPrefetchExpectStartsWhereRecoveryWillBeginOnce: the segment
// backup_label names and those after it are fetched before replay asks,
// served as hits when it does, each fetched once; once replay has asked,
// Expect changes nothing.
func TestPrefetchExpectStartsWhereRecoveryWillBeginOnce(t *testing.T) {
	p := newTestPrefetcher(t, 0)
	m := &memSource{calls: map[string]int{}, last: seg(9)}
	src := m.src()
	p.Expect(src, seg(2), 3)
	p.wg.Wait()
	for _, s := range []string{seg(2), seg(3), seg(4)} {
		if m.count(s) != 1 {
			t.Errorf("%s fetched %d times before replay asked, want 1", s, m.count(s))
		}
	}
	if m.count(seg(5)) != 0 {
		t.Error("fetched beyond the ceiling")
	}
	p.Want(src, seg(2), 3)
	if _, ok := p.Take(context.Background(), src.Key, seg(2)); !ok {
		t.Fatal("the first segment of recovery missed the cache")
	}
	p.Expect(src, seg(7), 3) // the end of recovery probes history files again
	p.wg.Wait()
	if m.count(seg(7)) != 0 || m.count(seg(2)) != 1 {
		t.Errorf("Expect acted after replay had asked: %s fetched %d times, %s %d", seg(7), m.count(seg(7)), seg(2), m.count(seg(2)))
	}
}

// TestPrefetchDropsACacheReplayStoppedAsking: after a promotion nothing
// asks again, and the copy kept of the last segment (16 MiB) and whatever
// was fetched ahead must not stay for the agent's lifetime; a cache asked
// of within the idle time stays.
func TestPrefetchDropsACacheReplayStoppedAsking(t *testing.T) {
	p, _, src, path := takeTheLastSegment(t)
	p.Keep(src.Key, seg(3), path)
	os.Remove(path)
	p.mu.Lock()
	dir := p.caches[src.Key].dir
	p.mu.Unlock()
	if _, err := os.Stat(path + ".kept"); err != nil {
		t.Fatalf("no kept copy: %v", err)
	}
	p.dropIdle(time.Now().Add(idleAfter - time.Second))
	if _, err := os.Stat(path + ".kept"); err != nil {
		t.Fatalf("a cache used a moment ago was dropped: %v", err)
	}
	p.dropIdle(time.Now().Add(idleAfter))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle cache's directory %s is still there", dir)
		}
	}
	if _, ok := p.Take(context.Background(), src.Key, seg(3)); ok {
		t.Error("a dropped cache served a segment")
	}
	// Replay asking again starts afresh.
	p.Want(src, seg(2), 4)
	p.wg.Wait()
	if path, ok := p.Take(context.Background(), src.Key, seg(3)); !ok || path == "" {
		t.Error("a new request after the drop was not served from a new cache")
	}
}

// TestPrefetchMayEndWhereAFetchIsStillInFlight: the segment after the one
// served may be the end of the archive while its lookup is in flight or
// found it missing, not once it is cached.
func TestPrefetchMayEndWhereAFetchIsStillInFlight(t *testing.T) {
	p := newTestPrefetcher(t, 0)
	m := &memSource{calls: map[string]int{}, last: seg(3), delay: 300 * time.Millisecond}
	src := m.src()
	p.Want(src, seg(1), 3)
	if !p.MayEndAt(src.Key, seg(2)) {
		t.Error("a segment whose fetch is in flight cannot be the end")
	}
	if p.MayEndAt(src.Key, seg(9)) {
		t.Error("a segment nobody asked for may be the end")
	}
	p.wg.Wait()
	if p.MayEndAt(src.Key, seg(2)) {
		t.Error("a cached segment may be the end")
	}
	if !p.MayEndAt(src.Key, seg(4)) {
		t.Error("a segment found missing cannot be the end")
	}
}

// TestPrefetchCountsTheTimeReplayWaitedForAFetchInFlight: a request for
// a segment still being fetched adds its wait to
// walden_wal_prefetch_wait_seconds_total; one for a cached segment adds
// nothing.
func TestPrefetchCountsTheTimeReplayWaitedForAFetchInFlight(t *testing.T) {
	p := newTestPrefetcher(t, 0)
	m := &memSource{calls: map[string]int{}, last: seg(5), delay: 300 * time.Millisecond}
	src := m.src()
	p.Want(src, seg(1), 3)
	if _, ok := p.Take(context.Background(), src.Key, seg(2)); !ok {
		t.Fatal("miss")
	}
	waited := value(p.waitSec)
	if waited < 0.2 || waited > 5 {
		t.Fatalf("waited %vs for a fetch of 300 ms", waited)
	}
	p.wg.Wait()
	if _, ok := p.Take(context.Background(), src.Key, seg(3)); !ok {
		t.Fatal("miss")
	}
	if got := value(p.waitSec); got != waited {
		t.Errorf("a cached segment added %vs of waiting", got-waited)
	}
}
