package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
)

// faStart starts an agent from cmd (built like startAgent's).
func faStart(t *testing.T, cmd *exec.Cmd, addr string) *runningAgent {
	t.Helper()
	r := &runningAgent{cmd: cmd, stderr: &lockedBuffer{}, addr: addr, exited: make(chan struct{})}
	cmd.Stderr = r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.waitErr = cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("agent stderr:\n%s", lastLines(r.stderr.String(), 60))
		}
	})
	r.waitLog(t, "MSG: agent started", 20*time.Second)
	return r
}

// faStartReadOnlyWAL starts the agent as postgres in a mount namespace of
// its own where pgdata/pg_wal is read-only: the agent cannot write %p,
// as under its systemd sandbox with PGDATA outside its ReadWritePaths.
func faStartReadOnlyWAL(t *testing.T, bin, env, pgdata, addr string, extraEnv []string) *runningAgent {
	t.Helper()
	walDir := filepath.Join(pgdata, "pg_wal")
	script := fmt.Sprintf(`mount --bind %[1]s %[1]s && mount -o remount,bind,ro %[1]s && exec setpriv --reuid=postgres --regid=postgres --init-groups -- %[2]s --envdir %[3]s agent --pgdata %[4]s`,
		walDir, bin, env, pgdata)
	cmd := pgtest.Command(t, extraEnv, "", "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.SysProcAttr = nil // root, to mount; setpriv becomes postgres
	return faStart(t, cmd, addr)
}

// faCacheDir is the agent's prefetch cache root under tmp.
func faCacheDir(t *testing.T, tmp string) string {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(tmp, "walden-prefetch-"+u.Uid)
}

// faCached lists the whole segments in the agent's cache.
func faCached(t *testing.T, tmp string) map[string]string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(faCacheDir(t, tmp), "p-*", "[0-9A-F]*"))
	out := map[string]string{}
	for _, p := range m {
		out[filepath.Base(p)] = p
	}
	return out
}

func faStore(t *testing.T, store, name string, data []byte, mtime time.Time) {
	t.Helper()
	raw := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(raw, data, 0o600); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(store, "wal_005", name+".lz4")
	os.MkdirAll(filepath.Dir(obj), 0o755)
	if out, err := exec.Command("lz4", "-f", "-q", raw, obj).CombinedOutput(); err != nil {
		t.Fatalf("lz4: %v %s", err, out)
	}
	if !mtime.IsZero() {
		os.Chtimes(obj, mtime, mtime)
	}
	pgtest.Chown(t, filepath.Dir(obj))
}

func faSeg(n int) string { return fmt.Sprintf("0000000100000000%08X", n) }

// TestFetchAheadThroughTheAgentServesChecksAndBoundsItsCache drives
// wal-fetch through an agent that cannot write pg_wal (its own read-only
// mount), on synthetic segments of the cluster: the client writes %p from
// the bytes the agent sends; -p caps what is prefetched; a cached copy
// damaged on disk is not served (the store's is); a corrupt object fails
// with 200 and leaves nothing; a hole before an old later segment is a gap
// (200); past the end is 1; no standalone prefetch protocol is used.
func TestFetchAheadThroughTheAgentServesChecksAndBoundsItsCache(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c := pgtest.New(t, pgtest.Options{})
	store := c.MkDir(t, "store")
	env, addr := agentEnvdir(t, c, store, map[string]string{"WALDEN_COMPRESSION": "lz4"})
	tmp := c.MkDir(t, "tmp")
	sysid := clusterSysID(t, c.Dir)
	old := time.Now().Add(-10 * time.Minute)
	segs := map[int][]byte{}
	for _, n := range []int{1, 2, 3, 4, 7} {
		segs[n] = walSegmentOf(t, faSeg(n), sysid, fmt.Sprintf("seg%d-", n))
		faStore(t, store, faSeg(n), segs[n], old)
	}
	// 5 holds the bytes of 4: a valid segment, of the wrong name.
	faStore(t, store, faSeg(5), segs[4], old)

	ag := faStartReadOnlyWAL(t, bin, env, c.Dir, addr, []string{"TMPDIR=" + tmp})
	dest := filepath.Join(c.Dir, "pg_wal", "RECOVERYXLOG")
	fetch := func(n, p int) (string, int) {
		t.Helper()
		os.Remove(dest)
		_, stderr, code, _ := runWalden(t, nil, "", bin, "--envdir", env, "wal-fetch", "-p", fmt.Sprint(p), faSeg(n), dest)
		return stderr, code
	}
	served := func(n int) {
		t.Helper()
		got, err := os.ReadFile(dest)
		if err != nil || !bytes.Equal(got, segs[n]) {
			t.Fatalf("%s: %s does not hold the segment (%v)", faSeg(n), dest, err)
		}
	}

	if stderr, code := fetch(1, 2); code != 0 {
		t.Fatalf("wal-fetch %s: exit %d\n%s", faSeg(1), code, stderr)
	}
	served(1)
	waitFor(t, 10*time.Second, "2 and 3 cached", func() bool { return len(faCached(t, tmp)) == 2 })
	time.Sleep(300 * time.Millisecond)
	cached := faCached(t, tmp)
	if _, ok := cached[faSeg(4)]; ok || len(cached) != 2 || cached[faSeg(2)] == "" || cached[faSeg(3)] == "" {
		t.Fatalf("with -p 2 the cache holds %v, want exactly %s and %s", cached, faSeg(2), faSeg(3))
	}
	if m := ag.metrics(t); m["walden_wal_prefetch_depth"] < 1 || m["walden_wal_prefetch_depth"] > 2 {
		t.Errorf("walden_wal_prefetch_depth = %v with -p 2", m["walden_wal_prefetch_depth"])
	}
	// Damage the cached 3 where a check sees it: the first page header.
	if err := os.WriteFile(cached[faSeg(3)], []byte("not a WAL segment"), 0o600); err != nil {
		t.Fatal(err)
	}

	if stderr, code := fetch(2, 8); code != 0 || !strings.Contains(stderr, "promoted prefetched wal segment") {
		t.Fatalf("wal-fetch %s: exit %d, want 0 from the cache\n%s", faSeg(2), code, stderr)
	}
	served(2)
	stderr, code := fetch(3, 8)
	if code != 0 || !strings.Contains(stderr, "discarded an invalid prefetched segment") {
		t.Fatalf("wal-fetch %s: exit %d, want 0 from the store after discarding the cached copy\n%s", faSeg(3), code, stderr)
	}
	served(3)
	if stderr, code := fetch(4, 8); code != 0 {
		t.Fatalf("wal-fetch %s: exit %d\n%s", faSeg(4), code, stderr)
	}
	served(4)
	stderr, code = fetch(5, 8)
	if code != exitFetchFailed || !strings.Contains(stderr, "WAL of another segment") {
		t.Fatalf("wal-fetch of the corrupt %s: exit %d, want %d naming the problem\n%s", faSeg(5), code, exitFetchFailed, stderr)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("a failed wal-fetch left %s (%v)", dest, err)
	}
	stderr, code = fetch(6, 8)
	if code != exitFetchFailed || !strings.Contains(stderr, "the archive has a gap") {
		t.Fatalf("wal-fetch of %s, missing before the old %s: exit %d, want %d (gap)\n%s", faSeg(6), faSeg(7), code, exitFetchFailed, stderr)
	}
	if stderr, code := fetch(8, 8); code != 1 {
		t.Fatalf("wal-fetch past the end of the archive: exit %d, want 1\n%s", code, stderr)
	}
	if stderr, code := fetch(8, 8); code != 1 {
		t.Fatalf("wal-fetch past the end of the archive, again: exit %d, want 1\n%s", code, stderr)
	}

	m := ag.metrics(t)
	if m["walden_wal_prefetch_hits_total"] < 2 || m["walden_wal_fetched_total"] != 4 || m["walden_wal_fetch_not_found_total"] != 2 || m["walden_wal_fetch_failures_total"] != 2 {
		t.Errorf("metrics: hits %v fetched %v not found %v failed %v; want >= 2, 4, 2, 2", m["walden_wal_prefetch_hits_total"],
			m["walden_wal_fetched_total"], m["walden_wal_fetch_not_found_total"], m["walden_wal_fetch_failures_total"])
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "pg_wal", ".wal-e")); !os.IsNotExist(err) {
		t.Errorf("pg_wal/.wal-e exists: a call fell back to the standalone prefetch (%v)", err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(c.Dir, "pg_wal", ".walden-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left in pg_wal: %v", leftovers)
	}
	ag.stop(t)
	if ents, _ := os.ReadDir(faCacheDir(t, tmp)); len(ents) != 0 {
		t.Errorf("the stopped agent left its cache: %v", ents)
	}
}

// TestFetchAheadCacheStaysWithinItsByteBound: with room for one segment,
// the agent never holds more than one, whatever -p asks.
func TestFetchAheadCacheStaysWithinItsByteBound(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c := pgtest.New(t, pgtest.Options{})
	store := c.MkDir(t, "store")
	env, addr := agentEnvdir(t, c, store, map[string]string{"WALDEN_COMPRESSION": "lz4", "WALDEN_PREFETCH_BYTES": "20M"})
	tmp := c.MkDir(t, "tmp")
	sysid := clusterSysID(t, c.Dir)
	for n := 1; n <= 6; n++ {
		faStore(t, store, faSeg(n), walSegmentOf(t, faSeg(n), sysid, "x"), time.Time{})
	}
	startAgent(t, bin, env, c.Dir, addr, []string{"TMPDIR=" + tmp})
	dest := filepath.Join(c.Dir, "pg_wal", "RECOVERYXLOG")
	for n := 1; n <= 3; n++ {
		if _, stderr, code, _ := runWalden(t, nil, "", bin, "--envdir", env, "wal-fetch", "-p", "8", faSeg(n), dest); code != 0 {
			t.Fatalf("wal-fetch %s: exit %d\n%s", faSeg(n), code, stderr)
		}
		waitFor(t, 10*time.Second, "the next segment cached", func() bool { return len(faCached(t, tmp)) == 1 })
		time.Sleep(300 * time.Millisecond)
		files, _ := filepath.Glob(filepath.Join(faCacheDir(t, tmp), "p-*", "*"))
		if len(files) != 1 || filepath.Base(files[0]) != faSeg(n+1) {
			t.Fatalf("after %s the cache holds %v, want only %s", faSeg(n), files, faSeg(n+1))
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// faReplica archives a primary (standalone wal-push), then returns a base
// copy set up to recover through `walden wal-fetch -p 8` with an agent
// envdir, the primary's answers to check, and the number of segments
// archived after the copy.
func faReplica(t *testing.T, bin string) (replica *pgtest.Cluster, env, addr string, want map[string]string) {
	t.Helper()
	primary := pgtest.New(t, pgtest.Options{})
	store := primary.MkDir(t, "store")
	penv, _ := agentEnvdir(t, primary, store, map[string]string{"WALDEN_COMPRESSION": "lz4"})
	primary.WriteConf(t, map[string]string{
		"archive_mode":    "on",
		"wal_level":       "replica",
		"archive_command": pgtest.Quote(fmt.Sprintf("%s --envdir %s wal-push %%p", bin, penv)),
	})
	primary.Start(t)
	primary.Psql(t, "create table marker(id int primary key, note text)")
	base := filepath.Join(primary.MkDir(t, "copies"), "replica")
	primary.BaseCopy(t, base)
	primary.Pgbench(t, "-i", "-s", "2", "-q")
	primary.Psql(t, "do $$ begin for i in 1..40 loop insert into marker values (i, 'n' || i); perform pg_switch_wal(); end loop; end $$")
	want = map[string]string{
		"select count(*), sum(id) from marker":       "",
		"select sum(abalance) from pgbench_accounts": "",
	}
	for q := range want {
		want[q] = primary.Psql(t, q)
	}
	last := primary.Psql(t, "select pg_walfile_name(pg_current_wal_lsn())")
	primary.Psql(t, "select pg_switch_wal()")
	primary.WaitArchived(t, last, 120*time.Second)
	primary.Stop(t)

	replica = pgtest.New(t, pgtest.Options{NoInit: true})
	env, addr = agentEnvdir(t, replica, store, map[string]string{"WALDEN_COMPRESSION": "lz4"})
	if err := os.Remove(replica.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(base, replica.Dir); err != nil {
		t.Fatal(err)
	}
	replica.WriteConf(t, map[string]string{
		"archive_mode":           "off",
		"restore_command":        pgtest.Quote(fmt.Sprintf(`%s --envdir %s wal-fetch -p 8 "%%f" "%%p"`, bin, env)),
		"recovery_target_action": "promote",
	})
	os.WriteFile(filepath.Join(replica.Dir, "recovery.signal"), nil, 0o600)
	pgtest.Chown(t, replica.Dir)
	return replica, env, addr, want
}

// watchHelpers counts processes running wal-prefetch into dataDir (other
// tests may run their own meanwhile) until stop is closed.
func watchHelpers(stop chan struct{}, dataDir string) *atomic.Int64 {
	var n atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range m {
				if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte("wal-prefetch\x00")) && bytes.Contains(b, []byte(dataDir)) {
					n.Add(1)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return &n
}

func faCheckAnswers(t *testing.T, c *pgtest.Cluster, want map[string]string) {
	t.Helper()
	for q, w := range want {
		if got := c.Psql(t, q); got != w {
			t.Errorf("%s: replica %q, primary %q", q, got, w)
		}
	}
}

// TestFetchAheadPITRReplayThroughTheAgentServesEverySegmentFromItsCache
// replays 40+ segments into a real PostgreSQL 15 through the agent: the
// data arrives whole, nearly every segment is a cache hit, no wal-prefetch
// process ever runs, no standalone prefetch directory appears, and the
// agent leaves no cache behind when it stops.
func TestFetchAheadPITRReplayThroughTheAgentServesEverySegmentFromItsCache(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	replica, env, addr, want := faReplica(t, bin)
	tmp := replica.MkDir(t, "tmp")
	ag := startAgent(t, bin, env, replica.Dir, addr, []string{"TMPDIR=" + tmp})
	stop := make(chan struct{})
	helpers := watchHelpers(stop, replica.Dir)
	replica.Start(t)
	replica.WaitRecoveryDone(t, 3*time.Minute)
	close(stop)
	faCheckAnswers(t, replica, want)
	if n := helpers.Load(); n != 0 {
		t.Errorf("wal-prefetch processes seen %d times during the replay", n)
	}
	m := ag.metrics(t)
	fetched, hits := m["walden_wal_fetched_total"], m["walden_wal_prefetch_hits_total"]
	// Every segment is a hit: the first, fetched while PostgreSQL probed
	// for timeline history files (backup_label names it), and the last
	// one's second request at the end of recovery (the kept copy); the
	// misses are PostgreSQL's probes past the end of the archive.
	if fetched < 40 || hits < fetched || m["walden_wal_prefetch_misses_total"] > 5 {
		t.Errorf("fetched %v, prefetch hits %v, misses %v: want >= 40 fetched, every one a hit", fetched, hits, m["walden_wal_prefetch_misses_total"])
	}
	if n := strings.Count(replica.LogContents(), "promoted prefetched wal segment"); float64(n) != hits {
		t.Errorf("%d promotion lines in the server log, %v hits", n, hits)
	}
	if _, err := os.Stat(filepath.Join(replica.Dir, "pg_wal", ".wal-e")); !os.IsNotExist(err) {
		t.Errorf("pg_wal/.wal-e exists: a call fell back to the standalone prefetch (%v)", err)
	}
	ag.stop(t)
	if ents, _ := os.ReadDir(faCacheDir(t, tmp)); len(ents) != 0 {
		t.Errorf("the stopped agent left its cache: %v", ents)
	}
}

// TestFetchAheadAgentKilledMidReplayTheClientsFallBack kills the agent
// while PostgreSQL replays through it: the following wal-fetch calls do
// the work themselves and recovery reaches the end with the same data.
func TestFetchAheadAgentKilledMidReplayTheClientsFallBack(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	replica, env, addr, want := faReplica(t, bin)
	tmp := replica.MkDir(t, "tmp")
	ag := startAgent(t, bin, env, replica.Dir, addr, []string{"TMPDIR=" + tmp})
	replica.Start(t)
	waitFor(t, time.Minute, "three cache hits", func() bool { return ag.metrics(t)["walden_wal_prefetch_hits_total"] >= 3 })
	ag.signal(t, syscall.SIGKILL)
	<-ag.exited
	inRecovery := replica.Psql(t, "select pg_is_in_recovery()")
	replica.WaitRecoveryDone(t, 3*time.Minute)
	faCheckAnswers(t, replica, want)
	if inRecovery != "t" {
		t.Fatalf("recovery ended before the agent was killed; the test proves nothing")
	}
	if _, err := os.Stat(filepath.Join(replica.Dir, "pg_wal", ".wal-e")); err != nil {
		t.Errorf("no standalone prefetch after the agent died: %v", err)
	}
}

// TestAgentRefusesAMalformedPrefetchBytesSetting: one short error naming
// the variable and the value, before the agent serves anything.
func TestAgentRefusesAMalformedPrefetchBytesSetting(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c := pgtest.New(t, pgtest.Options{})
	store := c.MkDir(t, "store")
	for _, bad := range []string{"lots", "-5", "0", "12T"} {
		env, _ := agentEnvdir(t, c, store, map[string]string{"WALDEN_PREFETCH_BYTES": bad})
		_, errOut, code, _ := runWalden(t, nil, "", bin, "--envdir", env, "agent", "--pgdata", c.Dir)
		if code == 0 || !strings.Contains(errOut, "WALDEN_PREFETCH_BYTES") || !strings.Contains(errOut, fmt.Sprintf("%q", bad)) {
			t.Fatalf("WALDEN_PREFETCH_BYTES=%s: exit %d:\n%s", bad, code, errOut)
		}
		if n := strings.Count(strings.TrimSpace(errOut), "\n"); n > 3 {
			t.Errorf("more than a short error:\n%s", errOut)
		}
	}
}
