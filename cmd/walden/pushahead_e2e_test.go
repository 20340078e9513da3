package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
)

// paCluster is a started PostgreSQL 15 cluster with archive_mode on and
// archiving held back (empty archive_command), and an envdir with
// push-ahead on. Call paArchive to set the archive_command.
func paCluster(t *testing.T, bin string) (c *pgtest.Cluster, env, store, addr string) {
	t.Helper()
	c = pgtest.New(t, pgtest.Options{})
	store = c.MkDir(t, "store")
	env, addr = agentEnvdir(t, c, store, map[string]string{
		"WALDEN_PUSH_AHEAD":         "on",
		"WALDEN_UPLOAD_CONCURRENCY": "3",
		"WALDEN_COMPRESSION":        "lz4",
	})
	c.WriteConf(t, map[string]string{
		"archive_mode":    "on",
		"wal_level":       "replica",
		"archive_command": "''",
	})
	c.Start(t)
	return c, env, store, addr
}

// paArchive sets archive_command to wal-push chained with a copy into
// chain, the way sites feed a second consumer.
func paArchive(t *testing.T, c *pgtest.Cluster, bin, env, chain string) {
	t.Helper()
	c.WriteConf(t, map[string]string{
		"archive_command": pgtest.Quote(fmt.Sprintf("%s --envdir %s wal-push %%p && cp %%p %s/%%f", bin, env, chain)),
	})
	c.Reload(t)
}

// paLoad writes WAL with pgbench and switches segments a few times.
func paLoad(t *testing.T, c *pgtest.Cluster, init bool) {
	t.Helper()
	if init {
		c.Pgbench(t, "-i", "-s", "3", "-q")
	} else {
		c.Pgbench(t, "-c", "2", "-T", "3", "-n")
	}
	for i := 0; i < 3; i++ {
		c.Psql(t, "create table if not exists churn(x int); insert into churn select generate_series(1, 1000)")
		c.Psql(t, "select pg_switch_wal()")
	}
}

// paCaughtUp switches WAL and waits until the archiver has nothing left.
func paCaughtUp(t *testing.T, c *pgtest.Cluster, d time.Duration) {
	t.Helper()
	seg := c.Psql(t, "select pg_walfile_name(pg_current_wal_lsn())")
	c.Psql(t, "select pg_switch_wal()")
	deadline := time.Now().Add(d)
	for {
		last := c.Psql(t, "select coalesce(last_archived_wal, '') from pg_stat_archiver")
		ready, _ := filepath.Glob(filepath.Join(c.Dir, "pg_wal", "archive_status", "*.ready"))
		if last >= seg && len(ready) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("archiving did not catch up with %s (last %q, %d .ready)\n%s", seg, last, len(ready), lastLines(c.LogContents(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var segName = regexp.MustCompile(`^[0-9A-F]{24}$`)

// paSameAsStored checks that every segment in chain is in the store,
// decompressing to the same bytes, and returns their names. With
// chainGotAll, every stored segment must also have reached chain.
func paSameAsStored(t *testing.T, chain, store string, chainGotAll bool) []string {
	t.Helper()
	ents, err := os.ReadDir(chain)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if !segName.MatchString(e.Name()) {
			continue
		}
		names = append(names, e.Name())
		want, err := os.ReadFile(filepath.Join(chain, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := exec.Command("lz4", "-dc", filepath.Join(store, "wal_005", e.Name()+".lz4")).Output()
		if err != nil {
			t.Fatalf("%s is not stored: %v", e.Name(), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: stored content differs from the segment", e.Name())
		}
	}
	sort.Strings(names)
	if chainGotAll {
		stored, _ := filepath.Glob(filepath.Join(store, "wal_005", "*.lz4"))
		for _, p := range stored {
			n := strings.TrimSuffix(filepath.Base(p), ".lz4")
			if _, err := os.Stat(filepath.Join(chain, n)); segName.MatchString(n) && err != nil {
				t.Errorf("%s is stored but the chained command never saw it", n)
			}
		}
	}
	if len(names) < 5 {
		t.Fatalf("only %d segments archived; the load made too little WAL", len(names))
	}
	return names
}

// completedLines counts, per segment, the "completed archiving" lines in
// logs.
func completedLines(logs ...string) map[string]int {
	re := regexp.MustCompile(`MSG: completed archiving to a file\s+DETAIL: Archiving to "[^"]*/wal_005/([0-9A-F]{24})\.lz4"`)
	n := map[string]int{}
	for _, l := range logs {
		for _, m := range re.FindAllStringSubmatch(l, -1) {
			n[m[1]]++
		}
	}
	return n
}

// TestPushAheadArchivesUnderLoadOncePerSegmentWithoutStealingTheChainedCommand
// runs pgbench against a real cluster with the agent pushing ahead: every
// segment is stored byte-identical, logged as completed exactly once
// (agent and archive_command together), mostly by the agent's workers,
// and the command chained after wal-push still receives every segment,
// since nothing but PostgreSQL renames .ready files.
func TestPushAheadArchivesUnderLoadOncePerSegmentWithoutStealingTheChainedCommand(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, env, store, addr := paCluster(t, bin)
	chain := c.MkDir(t, "chain")
	ag := startAgent(t, bin, env, c.Dir, addr, nil)
	paLoad(t, c, true) // .ready files pile up: archive_command is empty
	ag.waitLog(t, "MSG: completed archiving to a file", 30*time.Second)
	paArchive(t, c, bin, env, chain)
	paLoad(t, c, false)
	paCaughtUp(t, c, 120*time.Second)

	names := paSameAsStored(t, chain, store, true)
	counts := completedLines(ag.stderr.String(), c.LogContents())
	for _, n := range names {
		if counts[n] != 1 {
			t.Errorf("%s: %d completed archiving lines, want exactly 1", n, counts[n])
		}
	}
	m := ag.metrics(t)
	if m["walden_wal_pushahead_uploaded_total"] < float64(len(names))/2 {
		t.Errorf("push-ahead uploaded %v of %d segments", m["walden_wal_pushahead_uploaded_total"], len(names))
	}
	if m["walden_wal_pushahead_failed_total"] != 0 {
		t.Errorf("failed_total %v on a healthy store", m["walden_wal_pushahead_failed_total"])
	}
	if m["walden_wal_pushed_total"] < float64(len(names)) {
		t.Errorf("archive_command was not answered by the agent: %v wal-push served for %d segments", m["walden_wal_pushed_total"], len(names))
	}
	for _, k := range []string{"walden_wal_pushahead_queued", "walden_wal_pushahead_in_flight", "walden_archive_oldest_ready_age_seconds"} {
		if v, ok := m[k]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0 once caught up", k, v, ok)
		}
	}
	// pg_stat_archiver counted every segment: no .ready was renamed
	// behind PostgreSQL's back.
	if got := c.Psql(t, "select failed_count from pg_stat_archiver"); got != "0" {
		t.Errorf("pg_stat_archiver failed_count %s", got)
	}
	ag.stop(t)
}

// TestPushAheadAgentKilledMidLoadLosesNothing kills the agent with SIGKILL
// while it archives under load: archive_command carries on alone, and the
// restarted agent resumes; every segment ends up stored.
func TestPushAheadAgentKilledMidLoadLosesNothing(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, env, store, addr := paCluster(t, bin)
	chain := c.MkDir(t, "chain")
	ag := startAgent(t, bin, env, c.Dir, addr, nil)
	paArchive(t, c, bin, env, chain)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		ag.cmd.Process.Kill()
	}()
	paLoad(t, c, true)
	<-ag.exited
	paLoad(t, c, false)
	ag2 := startAgent(t, bin, env, c.Dir, addr, nil)
	paLoad(t, c, false)
	paCaughtUp(t, c, 120*time.Second)
	// While the agent was dead, standalone wal-push's pool archived some
	// segments without PostgreSQL calling the chained command for them.
	names := paSameAsStored(t, chain, store, false)
	if got := ag2.metrics(t)["walden_wal_pushed_total"]; got == 0 {
		t.Errorf("the restarted agent served no wal-push")
	}
	if !strings.Contains(ag2.stderr.String(), "MSG: agent started") {
		t.Fatal("no restart")
	}
	t.Logf("%d segments archived across the kill", len(names))
	ag2.stop(t)
}

// TestPushAheadFailingStoreIsRetriedAndNothingIsLost makes the store
// unwritable for a while: failures are counted only while it fails,
// archive_command reports the failure to PostgreSQL, and once the store
// is back every segment is stored.
func TestPushAheadFailingStoreIsRetriedAndNothingIsLost(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, env, store, addr := paCluster(t, bin)
	chain := c.MkDir(t, "chain")
	ag := startAgent(t, bin, env, c.Dir, addr, nil)
	paArchive(t, c, bin, env, chain)
	paLoad(t, c, true)
	paCaughtUp(t, c, 120*time.Second)

	walDir := filepath.Join(store, "wal_005")
	if err := os.Chmod(walDir, 0o555); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			os.Chmod(walDir, 0o755)
		}
	}()
	c.Psql(t, "insert into churn select generate_series(1, 1000)")
	c.Psql(t, "select pg_switch_wal()")
	c.Psql(t, "insert into churn select generate_series(1, 1000)")
	c.Psql(t, "select pg_switch_wal()")
	deadline := time.Now().Add(30 * time.Second)
	for ag.metrics(t)["walden_wal_pushahead_failed_total"] < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no push-ahead failure counted while the store is read-only")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for c.Psql(t, "select failed_count from pg_stat_archiver") == "0" {
		if time.Now().After(deadline) {
			t.Fatal("archive_command did not report the failure to PostgreSQL")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if age := ag.metrics(t)["walden_archive_oldest_ready_age_seconds"]; age <= 0 {
		t.Errorf("oldest ready age %v while segments wait", age)
	}
	if err := os.Chmod(walDir, 0o755); err != nil {
		t.Fatal(err)
	}
	restored = true
	paCaughtUp(t, c, 120*time.Second)
	failed := ag.metrics(t)["walden_wal_pushahead_failed_total"]
	paLoad(t, c, false)
	paCaughtUp(t, c, 120*time.Second)
	if after := ag.metrics(t)["walden_wal_pushahead_failed_total"]; after != failed {
		t.Errorf("failed_total rose from %v to %v after the store recovered", failed, after)
	}
	paSameAsStored(t, chain, store, true)
	if !strings.Contains(ag.stderr.String(), "could not archive a segment ahead of archive_command") {
		t.Error("no failure logged by the agent")
	}
	ag.stop(t)
}

func TestAgentRefusesAMalformedPushAheadSetting(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c := pgtest.New(t, pgtest.Options{})
	store := c.MkDir(t, "store")
	env, _ := agentEnvdir(t, c, store, map[string]string{"WALDEN_PUSH_AHEAD": "sometimes"})
	_, errOut, code, _ := runWalden(t, nil, "", bin, "--envdir", env, "agent", "--pgdata", c.Dir)
	if code == 0 || !strings.Contains(errOut, "WALDEN_PUSH_AHEAD") || !strings.Contains(errOut, `"sometimes"`) {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	if n := strings.Count(strings.TrimSpace(errOut), "\n"); n > 3 {
		t.Errorf("more than a short error:\n%s", errOut)
	}
}

// TestPushAheadWalPushThroughTheAgentPushesOnlyItsFileAndSkipsForeignWAL
// pins what a wal-push handed to an agent with push-ahead on does with a
// segment the agent does not hold yet: it archives that file alone (no
// pool, so no other .ready is renamed), and a segment of another cluster
// left in pg_wal is never pushed. (Answers from memory are pinned by the
// load test: one completed line per segment.)
func TestPushAheadWalPushThroughTheAgentPushesOnlyItsFileAndSkipsForeignWAL(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, env, store, addr := paCluster(t, bin)
	sysid := clusterSysID(t, c.Dir)
	put := func(name string, sysid uint64, ready bool) {
		p := filepath.Join(c.Dir, "pg_wal", name)
		if err := os.WriteFile(p, walSegmentOf(t, name, sysid, "\x01\x02\x03"), 0o600); err != nil {
			t.Fatal(err)
		}
		pgtest.Chown(t, p)
		if ready {
			st := filepath.Join(c.Dir, "pg_wal", "archive_status", name+".ready")
			os.WriteFile(st, nil, 0o600)
			pgtest.Chown(t, st)
		}
	}
	own, foreign := "0000000100000000000000C1", "0000000100000000000000C2"
	put(own, sysid, false) // no .ready: only archive_command would ask
	put(foreign, sysid+1, true)
	ag := startAgent(t, bin, env, c.Dir, addr, nil)
	time.Sleep(1500 * time.Millisecond) // a scan or two

	_, errOut, code, _ := runWalden(t, nil, c.Dir, bin, "--envdir", env, "wal-push", "pg_wal/"+own)
	if code != 0 || !strings.Contains(errOut, "completed archiving to a file") {
		t.Fatalf("first wal-push: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "pg_wal", "archive_status", foreign+".ready")); err != nil {
		t.Errorf("another .ready file was renamed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(store, "wal_005", foreign+".lz4")); !os.IsNotExist(err) {
		t.Errorf("another cluster's segment was stored (%v)", err)
	}
	m := ag.metrics(t)
	if m["walden_wal_pushed_total"] != 1 || m["walden_wal_pushahead_uploaded_total"] != 0 || m["walden_wal_pushahead_failed_total"] != 0 {
		t.Errorf("metrics: pushed %v, push-ahead uploaded %v failed %v", m["walden_wal_pushed_total"], m["walden_wal_pushahead_uploaded_total"], m["walden_wal_pushahead_failed_total"])
	}
	if m["walden_archive_oldest_ready_age_seconds"] <= 0 {
		t.Errorf("oldest ready age %v with a .ready waiting", m["walden_archive_oldest_ready_age_seconds"])
	}
	ag.stop(t)
}
