package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
	"github.com/walden-pg/walden/internal/syncbuf"
)

// layout is the package's installation in a scratch root: bin/walden is
// this front, lib/walden/walden the full program, lib/walden/walden-wal
// the WAL program, lib/walden/bin/wal-e a relative link to bin/walden, as
// nfpm.yaml installs them.
type layout struct {
	root, front, core, walPrg, walE string
}

var inst struct {
	once sync.Once
	l    layout
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if inst.l.root != "" {
		os.RemoveAll(inst.l.root)
	}
	os.Exit(code)
}

// buildFront builds this package into path, readable and executable by
// postgres (archive_command runs as postgres).
func buildFront(path string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	if out, err := exec.Command(goTool, "build", "-o", path, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return os.Chmod(path, 0o755)
}

func installed(t *testing.T) layout {
	t.Helper()
	core := pgtest.BuildWalden(t)
	walPrg := pgtest.BuildWALProgram(t)
	inst.once.Do(func() {
		root, err := os.MkdirTemp("", "walden-front-")
		if err != nil {
			inst.err = err
			return
		}
		inst.l = layout{root: root, front: filepath.Join(root, "bin", "walden"),
			core: filepath.Join(root, "lib", "walden", "walden"), walPrg: filepath.Join(root, "lib", "walden", "walden-wal"),
			walE: filepath.Join(root, "lib", "walden", "bin", "wal-e")}
		// MkdirTemp's 0700 would keep postgres out.
		for _, d := range []string{"", "bin", "lib", "lib/walden", "lib/walden/bin"} {
			d = filepath.Join(root, d)
			if err := os.MkdirAll(d, 0o755); err != nil {
				inst.err = err
				return
			}
			if err := os.Chmod(d, 0o755); err != nil {
				inst.err = err
				return
			}
		}
		if inst.err = buildFront(inst.l.front); inst.err != nil {
			return
		}
		if inst.err = os.Symlink(core, inst.l.core); inst.err != nil {
			return
		}
		if inst.err = os.Symlink(walPrg, inst.l.walPrg); inst.err != nil {
			return
		}
		inst.err = os.Symlink("../../../bin/walden", inst.l.walE)
	})
	if inst.err != nil {
		t.Fatal(inst.err)
	}
	return inst.l
}

type result struct {
	stdout, stderr string
	code           int
	ran            program // which program the front ran (see runFront)
}

// runAs runs path with argv0 as postgres, in dir, with env added.
func runAs(t *testing.T, env []string, dir, argv0, path string, args ...string) result {
	t.Helper()
	cmd := pgtest.Command(t, env, dir, path, args...)
	cmd.Args[0] = argv0
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", path, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// program is the program that did a front's call.
type program string

const (
	frontOnly = program("")     // the front itself, with the agent
	fullPrg   = program("full") // the full program
	walPrgRan = program("wal")  // the WAL program
)

// runFront is runAs with the Go runtime tracing package initialisation
// (GODEBUG=inittrace=1, which no setting or fingerprint reads): the
// packages initialised show whether the front exec'd another program and
// which: the AWS SDK is in both, gRPC (the GCS client) and Prometheus (the
// agent) only in the full program. The trace lines are taken out of
// stderr.
func runFront(t *testing.T, env []string, dir, argv0, path string, args ...string) result {
	t.Helper()
	r := runAs(t, append(append([]string{}, env...), "GODEBUG=inittrace=1"), dir, argv0, path, args...)
	var kept []string
	for _, line := range strings.SplitAfter(r.stderr, "\n") {
		if !strings.HasPrefix(line, "init ") {
			kept = append(kept, line)
			continue
		}
		switch {
		case strings.Contains(line, "google.golang.org/grpc") || strings.Contains(line, "github.com/prometheus/"):
			r.ran = fullPrg
		case strings.Contains(line, "github.com/aws/") && r.ran == frontOnly:
			r.ran = walPrgRan
		}
	}
	r.stderr = strings.Join(kept, "")
	return r
}

// volatile are the parts of a log line that differ between any two runs.
var volatile = regexp.MustCompile(`((?:time|pid|rate|seconds)=|complete at )[0-9][^ ]*`)

func normalized(s string) string { return volatile.ReplaceAllString(s, "${1}*") }

// same fails unless the front's run printed and exited as the full
// program's did (log timestamps, pids and rates aside).
func same(t *testing.T, what string, front, full result) {
	t.Helper()
	if front.code != full.code || front.stdout != full.stdout || normalized(front.stderr) != normalized(full.stderr) {
		t.Errorf("%s: front and full program differ\nfront: exit %d\nstdout:\n%s\nstderr:\n%s\nfull: exit %d\nstdout:\n%s\nstderr:\n%s",
			what, front.code, front.stdout, front.stderr, full.code, full.stdout, full.stderr)
	}
}

// TestFrontLinksNoHeavyPackages keeps the front small: its start-up is
// archive_command's cost per segment, and every linked package's init runs
// before main.
func TestFrontLinksNoHeavyPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "github.com/walden-pg/walden/agent/fastpath\n") {
		t.Fatalf("go list -deps printed no fast-path client:\n%s", out)
	}
	// Not even these: each one's initialisation, or first use, costs the
	// front a measurable part of its 10 ms (bench/fastpath.sh).
	exact := map[string]bool{"net": true, "encoding/json": true, "github.com/rs/zerolog": true,
		"github.com/walden-pg/walden/walelog": true, "crypto/sha256": true, "github.com/walden-pg/walden/agent/fastpath/server": true}
	for _, pkg := range strings.Fields(string(out)) {
		if exact[pkg] {
			t.Errorf("the front links %s", pkg)
		}
		for _, heavy := range []string{"cloud.google.com/", "github.com/aws/", "google.golang.org/grpc", "google.golang.org/api",
			"prometheus", "golang.org/x/oauth2", "github.com/envoyproxy/", "encoding/gob", "github.com/walden-pg/walden/storage/"} {
			if strings.Contains(pkg, heavy) {
				t.Errorf("the front links %s", pkg)
			}
		}
	}
}

// TestFrontPrintsAndExitsAsTheFullProgram runs commands the front does
// not serve, or cannot serve without an agent, through both programs.
func TestFrontPrintsAndExitsAsTheFullProgram(t *testing.T) {
	l := installed(t)
	// Not t.TempDir: postgres must be able to enter it.
	tmp, err := os.MkdirTemp("", "walden-front-case-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	store := filepath.Join(tmp, "store")
	pgtest.Chown(t, tmp)
	env := []string{"WALE_FILE_PREFIX=file://localhost" + store, "WALE_LOG_DESTINATION=stderr",
		"WALDEN_SOCKET=" + filepath.Join(tmp, "no-agent.sock"), "WALDEN_LOCK_DIR=" + tmp}
	missing := filepath.Join(tmp, "pg_wal", "000000010000000000000001")
	dest := filepath.Join(tmp, "pg_wal", "RECOVERYXLOG")
	// gs:// is the full program's: the WAL program has no GCS client. The
	// store is a closed loopback port, tried once.
	gcsEnv := []string{"WALE_GS_PREFIX=gs://walden-front-test/x", "WALE_LOG_DESTINATION=stderr", "WALE_RETRIES=1",
		"STORAGE_EMULATOR_HOST=127.0.0.1:1", "WALDEN_SOCKET=" + filepath.Join(tmp, "no-agent.sock"), "WALDEN_LOCK_DIR=" + tmp}
	for _, tc := range []struct {
		name string
		walE bool
		env  []string // instead of env
		args []string
		ran  program // which program the front runs
	}{
		{name: "help", args: []string{"--help"}, ran: fullPrg},
		{name: "short help after an option", args: []string{"--terse", "-h"}, ran: fullPrg},
		{name: "version", args: []string{"version"}, ran: fullPrg},
		{name: "no command", args: nil, ran: fullPrg},
		{name: "unknown command", args: []string{"frobnicate"}, ran: fullPrg},
		{name: "unknown global option", args: []string{"--bogus", "wal-push", missing}, ran: fullPrg},
		{name: "wal-push help", args: []string{"wal-push", "--help"}, ran: fullPrg},
		{name: "wal-push without its file", args: []string{"wal-push"}, ran: fullPrg},
		{name: "wal-push with two files", args: []string{"wal-push", "a", "b"}, ran: fullPrg},
		{name: "wal-push bad pool size", args: []string{"wal-push", "-p", "many", missing}, ran: fullPrg},
		{name: "wal-push, no agent, missing file", args: []string{"wal-push", missing}, ran: walPrgRan},
		{name: "wal-push, no agent, terse", args: []string{"--terse", "wal-push", "-p1", missing}, ran: walPrgRan},
		{name: "wal-push, no agent, GCS store", env: gcsEnv, args: []string{"wal-push", missing}, ran: fullPrg},
		{name: "wal-push, no prefix", env: []string{"WALE_LOG_DESTINATION=stderr"}, args: []string{"wal-push", missing}, ran: fullPrg},
		{name: "wal-fetch, no agent, not archived", args: []string{"wal-fetch", "-p", "0", "000000010000000000000001", dest}, ran: walPrgRan},
		{name: "wal-fetch, no agent, bad name", args: []string{"wal-fetch", "000000010000000000000001", "RECOVERYXLOG", "x"}, ran: fullPrg},
		{name: "wal-fetch, no agent, GCS store", env: gcsEnv, args: []string{"wal-fetch", "000000010000000000000001", dest}, ran: fullPrg},
		{name: "wal-push, unreadable envdir", args: []string{"--envdir", filepath.Join(tmp, "no-such-envdir"), "wal-push", missing}, ran: fullPrg},
		{name: "wal-push, conflicting credentials", args: []string{"-k", "AKID", "--aws-instance-profile", "wal-push", missing}, ran: fullPrg},
		{name: "backup-list", args: []string{"backup-list"}, ran: fullPrg},
		{name: "wal-e version", walE: true, args: []string{"version"}, ran: fullPrg},
		{name: "wal-e help", walE: true, args: []string{"--help"}, ran: fullPrg},
		{name: "wal-e wal-push, no agent", walE: true, args: []string{"wal-push", missing}, ran: walPrgRan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frontPath, argv0 := l.front, l.front
			if tc.walE {
				frontPath, argv0 = l.walE, l.walE
			}
			env := env
			if tc.env != nil {
				env = tc.env
			}
			front := runFront(t, env, tmp, argv0, frontPath, tc.args...)
			full := runAs(t, env, tmp, argv0, l.core, tc.args...)
			same(t, tc.name, front, full)
			if want := tc.ran; front.ran != want {
				t.Errorf("%s: the front ran %q, want %q", tc.name, front.ran, want)
			}
			if front.stdout == "" && front.stderr == "" {
				t.Errorf("%s printed nothing at all (exit %d): not a comparison", tc.name, front.code)
			}
		})
	}
}

// TestFrontWithoutTheFullProgramSaysWhereItLooked: a broken installation
// is one line naming the paths and a status PostgreSQL cannot take for
// success or, for wal-fetch, for "not in the archive".
func TestFrontWithoutTheFullProgramSaysWhereItLooked(t *testing.T) {
	root := t.TempDir()
	front := filepath.Join(root, "bin", "walden")
	if err := os.MkdirAll(filepath.Dir(front), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := buildFront(front); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		env    []string
		status int
		names  []string
	}{
		{args: []string{"wal-push", "pg_wal/000000010000000000000001"}, status: 2,
			names: []string{filepath.Join(root, "lib", "walden", "walden"), filepath.Join(root, "bin", "walden-core")}},
		{args: []string{"--terse", "wal-fetch", "000000010000000000000001", "pg_wal/RECOVERYXLOG"}, status: 200,
			names: []string{filepath.Join(root, "lib", "walden", "walden")}},
		{args: []string{"version"}, status: 2, names: []string{"walden-core"}},
		{args: []string{"wal-fetch", "a", "b"}, env: []string{"WALDEN_CORE=/nonexistent/walden"}, status: 200, names: []string{"WALDEN_CORE=/nonexistent/walden"}},
		{args: []string{"wal-push", "x"}, env: []string{"WALDEN_CORE=" + front}, status: 2, names: []string{"is this front program"}},
	} {
		cmd := exec.Command(front, tc.args...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tc.env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.status {
			t.Errorf("%v: %v, want exit %d", tc.args, err, tc.status)
		}
		msg := errb.String()
		if out.Len() != 0 || strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "walden: cannot find the full walden program: ") {
			t.Errorf("%v: want one error line on stderr, got stdout %q stderr %q", tc.args, out.String(), msg)
		}
		for _, n := range tc.names {
			if !strings.Contains(msg, n) {
				t.Errorf("%v: %q does not name %s", tc.args, msg, n)
			}
		}
	}
}

func writeEnvdir(t *testing.T, dir string, vars map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range vars {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pgtest.Chown(t, dir)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// counter reads one counter of the agent's /metrics.
func counter(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics:\n%s", name, body)
	return 0
}

// TestFrontHandsWalPushToTheAgentAndPrintsAsTheFullProgram runs the
// archive_command of a real cluster with an agent running: the front
// must be served by the agent exactly as the full program is (metrics
// prove the agent served both), for a segment push-ahead already stored
// (push-ahead left at its default) and for a failing push, and must fall
// through to the full program when the configuration names no agent.
// The agent logs elsewhere than archive_command would, as under systemd.
func TestFrontHandsWalPushToTheAgentAndPrintsAsTheFullProgram(t *testing.T) {
	l := installed(t)
	c := pgtest.New(t, pgtest.Options{})
	store := c.MkDir(t, "store")
	env := filepath.Join(c.Base, "env")
	addr := freeAddr(t)
	// As under the package's unit: the agent logs to stderr only
	// (WALE_LOG_DESTINATION=stderr in its environment), archive_command
	// with WAL-E's default, stderr and syslog.
	vars := map[string]string{
		"WALE_FILE_PREFIX":       "file://localhost" + store,
		"WALDEN_METRICS_LISTEN":  addr,
		"WALDEN_SOCKET":          filepath.Join(c.MkDir(t, "run"), "agent.sock"),
		"WALDEN_LOCK_DIR":        c.MkDir(t, "lock"),
		"WALDEN_BACKUP_SCHEDULE": "0 0 1 1 *",
	}
	writeEnvdir(t, env, vars)
	c.WriteConf(t, map[string]string{"archive_mode": "on", "wal_level": "replica", "archive_command": "''"})
	c.Start(t)

	agentLog, err := os.Create(filepath.Join(c.Base, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer agentLog.Close()
	agentErr := func() string { b, _ := os.ReadFile(agentLog.Name()); return string(b) }
	ag := pgtest.Command(t, []string{"WALE_LOG_DESTINATION=stderr"}, "", l.core, "--envdir", env, "agent", "--pgdata", c.Dir)
	ag.Stderr = agentLog
	if err := ag.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { ag.Wait(); close(exited) }()
	t.Cleanup(func() {
		ag.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("agent stderr:\n%s", agentErr())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(agentErr(), "MSG: agent started"); {
		select {
		case <-exited:
			t.Fatalf("agent exited:\n%s", agentErr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not start:\n%s", agentErr())
		}
		time.Sleep(50 * time.Millisecond)
	}

	seg := c.Psql(t, "select pg_walfile_name(pg_current_wal_lsn())")
	c.Psql(t, "create table t as select generate_series(1, 10000) x")
	c.Psql(t, "select pg_switch_wal()")
	stored := filepath.Join(store, "wal_005", seg+".lz4")
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := os.Stat(stored); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("push-ahead (on by default) did not store %s", stored)
		}
		time.Sleep(50 * time.Millisecond)
	}

	walPush := func(path, env string) (front, full result) {
		full = runAs(t, nil, c.Dir, l.core, l.core, "--envdir", env, "wal-push", path)
		front = runFront(t, nil, c.Dir, l.front, l.front, "--envdir", env, "wal-push", path)
		if front.ran != frontOnly {
			t.Errorf("wal-push %s: the front ran the %s program instead of asking the agent", path, front.ran)
		}
		return front, full
	}

	before := counter(t, addr, "walden_wal_pushed_total")
	front, full := walPush(filepath.Join("pg_wal", seg), env)
	same(t, "wal-push of a segment the agent holds", front, full)
	if front.code != 0 || front.stderr != "" {
		t.Errorf("wal-push of a stored segment: exit %d, stderr %q", front.code, front.stderr)
	}
	if got := counter(t, addr, "walden_wal_pushed_total"); got != before+2 {
		t.Errorf("walden_wal_pushed_total went from %v to %v: the agent did not serve both calls", before, got)
	}

	before = counter(t, addr, "walden_wal_push_failures_total")
	front, full = walPush(filepath.Join(c.Dir, "pg_wal", "0000000100000000000000FE"), env)
	same(t, "wal-push of a missing segment, served by the agent", front, full)
	if front.code != 1 || !strings.Contains(front.stderr, "could not find file for wal-push") {
		t.Errorf("wal-push of a missing file: exit %d, stderr %q", front.code, front.stderr)
	}
	if got := counter(t, addr, "walden_wal_push_failures_total"); got != before+2 {
		t.Errorf("walden_wal_push_failures_total went from %v to %v: the agent did not serve both calls", before, got)
	}

	// wal-fetch: the agent sends the segment and the front writes it, as
	// the full program's hand-off does.
	served := func() float64 {
		return counter(t, addr, "walden_wal_fetch_seconds_count")
	}
	want, err := os.ReadFile(filepath.Join(c.Dir, "pg_wal", seg))
	if err != nil {
		t.Fatal(err)
	}
	fetched := c.MkDir(t, "fetched")
	dest := filepath.Join(fetched, "RECOVERYXLOG")
	fetch := func(path string) result {
		r := runFront(t, nil, c.Dir, path, path, "--envdir", env, "wal-fetch", "-p", "0", seg, dest)
		if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, want) {
			t.Errorf("wal-fetch through %s wrote %s wrong (%d bytes, err %v)", path, dest, len(got), err)
		}
		os.Remove(dest)
		return r
	}
	before = served()
	full = fetch(l.core)
	front = fetch(l.front)
	if front.ran != frontOnly {
		t.Errorf("wal-fetch: the front ran the %s program instead of asking the agent", front.ran)
	}
	same(t, "wal-fetch of an archived segment, served by the agent", front, full)
	if got := served(); got != before+2 {
		t.Errorf("walden_wal_fetch_seconds_count went from %v to %v: the agent did not serve both fetches", before, got)
	}
	missing := "0000000100000000000000FD"
	full = runAs(t, nil, c.Dir, l.core, l.core, "--envdir", env, "wal-fetch", "-p", "0", missing, dest)
	front = runFront(t, nil, c.Dir, l.front, l.front, "--envdir", env, "wal-fetch", "-p", "0", missing, dest)
	same(t, "wal-fetch of a segment the archive does not hold", front, full)
	if front.code != 1 || front.ran != frontOnly {
		t.Errorf("wal-fetch of a missing segment: exit %d (want 1), program run: %q", front.code, front.ran)
	}
	bad := runFront(t, nil, c.Dir, l.front, l.front, "--envdir", env, "wal-fetch", "not-a-wal-name", filepath.Join(fetched, "x"))
	if bad.ran != fullPrg || bad.code != 200 {
		t.Errorf("wal-fetch of a bad name: exit %d, program run: %q (the full program words usage errors)", bad.code, bad.ran)
	}

	// Another store and a socket nobody serves: the WAL program's own push,
	// the full program's code.
	alone := filepath.Join(c.Base, "env-alone")
	aloneStore := c.MkDir(t, "store-alone")
	vars["WALE_FILE_PREFIX"] = "file://localhost" + aloneStore
	vars["WALDEN_SOCKET"] = filepath.Join(c.Base, "run", "nobody.sock")
	writeEnvdir(t, alone, vars)
	pushed := counter(t, addr, "walden_wal_pushed_total")
	full = runAs(t, nil, c.Dir, l.core, l.core, "--envdir", alone, "wal-push", filepath.Join("pg_wal", seg))
	if err := os.RemoveAll(filepath.Join(aloneStore, "wal_005")); err != nil {
		t.Fatal(err)
	}
	front = runFront(t, nil, c.Dir, l.front, l.front, "--envdir", alone, "wal-push", filepath.Join("pg_wal", seg))
	if front.ran != walPrgRan {
		t.Errorf("without an agent, for a file store, the front ran the %q program, not the WAL program", front.ran)
	}
	same(t, "wal-push without an agent", front, full)
	if front.code != 0 || !strings.Contains(front.stderr, "completed archiving") {
		t.Errorf("wal-push without an agent: exit %d, stderr %q", front.code, front.stderr)
	}
	if _, err := os.Stat(filepath.Join(aloneStore, "wal_005", seg+".lz4")); err != nil {
		t.Errorf("the front's fall-through stored nothing: %v", err)
	}
	if got := counter(t, addr, "walden_wal_pushed_total"); got != pushed {
		t.Errorf("the agent served a call configured for no agent (%v -> %v)", pushed, got)
	}
}

// TestFrontToldToStopWhileTheAgentIsStuckExitsLeavingNothing: a
// restore_command whose agent is stuck on the store (an object that is a
// FIFO nobody writes: the agent's read blocks where no cancellation
// reaches it) is told to stop, as PostgreSQL's shutdown does. The front
// hangs up its side, waits its bound for the agent's answer, then exits 1
// on its own, with nothing at %p or beside it; the agent, unblocked,
// still serves the next call.
func TestFrontToldToStopWhileTheAgentIsStuckExitsLeavingNothing(t *testing.T) {
	l := installed(t)
	c := pgtest.New(t, pgtest.Options{})
	store := c.MkDir(t, "store")
	env := filepath.Join(c.Base, "env")
	addr := freeAddr(t)
	writeEnvdir(t, env, map[string]string{
		"WALE_FILE_PREFIX":       "file://localhost" + store,
		"WALE_LOG_DESTINATION":   "stderr",
		"WALDEN_METRICS_LISTEN":  addr,
		"WALDEN_SOCKET":          filepath.Join(c.MkDir(t, "run"), "agent.sock"),
		"WALDEN_LOCK_DIR":        c.MkDir(t, "lock"),
		"WALDEN_BACKUP_SCHEDULE": "0 0 1 1 *",
	})
	c.WriteConf(t, map[string]string{"archive_mode": "on", "wal_level": "replica", "archive_command": "''"})
	c.Start(t)
	agentErr := &syncbuf.Buffer{}
	ag := pgtest.Command(t, nil, "", l.core, "--envdir", env, "agent", "--pgdata", c.Dir)
	ag.Stderr = agentErr
	if err := ag.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ag.Process.Kill(); ag.Wait() })
	waitUntil(t, 30*time.Second, "the agent's metrics", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	stuck := "000000010000000000000077"
	fifo := filepath.Join(store, "wal_005", stuck+".lz4")
	if err := os.MkdirAll(filepath.Dir(fifo), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, store)
	fetched := c.MkDir(t, "fetched")
	dest := filepath.Join(fetched, "RECOVERYXLOG")
	cmd := pgtest.Command(t, nil, c.Dir, l.front, "--envdir", env, "wal-fetch", "-p", "0", stuck, dest)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The agent is inside the fetch once a thread of it waits in the
	// FIFO's open for a writer.
	waitUntil(t, 30*time.Second, "the agent to open the stuck object", func() bool { return waitsForAWriter(ag.Process.Pid) })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("front told to stop: %v, want exit 1\n%s", err, errb.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the front still waits 20 s after SIGTERM\n%s", errb.String())
	}
	if !strings.Contains(errb.String(), "stopped before the agent reported the outcome") {
		t.Errorf("stderr %q", errb.String())
	}
	if left, _ := os.ReadDir(fetched); len(left) != 0 {
		t.Errorf("left in %%p's directory: %v", left)
	}

	// Unblocked (an empty object: the agent's fetch fails), the agent
	// serves again: a missing segment through the front, exit 1.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	r := runFront(t, nil, c.Dir, l.front, l.front, "--envdir", env, "wal-fetch", "-p", "0", "000000010000000000000078", dest)
	if r.code != 1 || r.ran != frontOnly {
		t.Errorf("after the stuck call: exit %d (want 1), program run %q\n%s\nagent:\n%s", r.code, r.ran, r.stderr, agentErr.String())
	}
}

// waitsForAWriter tells whether a thread of pid sleeps in a FIFO's open,
// waiting for the other end.
func waitsForAWriter(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
	for _, w := range tasks {
		if b, err := os.ReadFile(w); err == nil && string(b) == "wait_for_partner" {
			return true
		}
	}
	return false
}

func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
	}
}

// initCounts counts the package initialisations GODEBUG=inittrace=1 put
// in a log: the AWS SDK's (in both programs) and Prometheus's (the full
// program's agent only).
func initCounts(log string) (aws, prometheus int) {
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.HasPrefix(line, "init github.com/aws/"):
			aws++
		case strings.HasPrefix(line, "init github.com/prometheus/"):
			prometheus++
		}
	}
	return aws, prometheus
}

// TestWALProgramArchivesAndReplaysAClusterWithoutAnAgent runs a real
// cluster's archive_command and a second cluster's restore_command
// through the front with no agent: the WAL program does every call (the
// package initialisation traced into PostgreSQL's logs shows which
// program ran), including standalone prefetch, whose helpers it starts
// as itself, and the replica ends with the primary's data.
func TestWALProgramArchivesAndReplaysAClusterWithoutAnAgent(t *testing.T) {
	l := installed(t)
	primary := pgtest.New(t, pgtest.Options{})
	store := primary.MkDir(t, "store")
	env := filepath.Join(primary.Base, "env")
	writeEnvdir(t, env, map[string]string{
		"WALE_FILE_PREFIX":     "file://localhost" + store,
		"WALE_LOG_DESTINATION": "stderr",
		"WALDEN_COMPRESSION":   "lz4",
		"WALDEN_SOCKET":        filepath.Join(primary.MkDir(t, "run"), "nobody.sock"),
	})
	primary.WriteConf(t, map[string]string{
		"archive_mode":    "on",
		"wal_level":       "replica",
		"archive_command": pgtest.Quote(fmt.Sprintf("GODEBUG=inittrace=1 %s --envdir %s wal-push %%p", l.front, env)),
	})
	primary.Start(t)
	base := filepath.Join(primary.MkDir(t, "copies"), "replica")
	primary.BaseCopy(t, base)
	primary.Pgbench(t, "-i", "-s", "2", "-q")
	primary.Psql(t, "create table marker as select 'after-base' as note")
	want := primary.Psql(t, "select sum(abalance) + count(*) from pgbench_accounts")
	last := primary.Psql(t, "select pg_walfile_name(pg_current_wal_lsn())")
	primary.Psql(t, "select pg_switch_wal()")
	primary.WaitArchived(t, last, 2*time.Minute)
	if failed := primary.Psql(t, "select failed_count from pg_stat_archiver"); failed != "0" {
		t.Fatalf("failed archive attempts: %s\n%s", failed, primary.LogContents())
	}
	archived, err := strconv.Atoi(primary.Psql(t, "select archived_count from pg_stat_archiver"))
	if err != nil {
		t.Fatal(err)
	}
	aws, prom := initCounts(primary.LogContents())
	if archived < 3 || aws == 0 || prom != 0 {
		t.Fatalf("archive_command: %d segments archived, AWS SDK initialised %d times, Prometheus %d times: want the WAL program for every call", archived, aws, prom)
	}
	primary.Stop(t)

	replica := pgtest.New(t, pgtest.Options{NoInit: true, Conf: map[string]string{
		"archive_mode":           "off",
		"restore_command":        pgtest.Quote(fmt.Sprintf(`GODEBUG=inittrace=1 %s --envdir %s wal-fetch -p 4 "%%f" "%%p"`, l.front, env)),
		"recovery_target_action": "promote",
	}})
	if err := os.Remove(replica.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(base, replica.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(replica.Dir, "recovery.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, replica.Dir)
	replica.Start(t)
	replica.WaitRecoveryDone(t, 3*time.Minute)
	if got := replica.Psql(t, "select sum(abalance) + count(*) from pgbench_accounts"); got != want {
		t.Errorf("replica has %s, primary had %s", got, want)
	}
	if got := replica.Psql(t, "select note from marker"); got != "after-base" {
		t.Errorf("replica's marker: %q", got)
	}
	log := replica.LogContents()
	aws, prom = initCounts(log)
	if !strings.Contains(log, "promoted prefetched wal segment") || aws == 0 || prom != 0 {
		t.Errorf("restore_command: prefetch promotions %v, AWS SDK initialised %d times, Prometheus %d times: want the WAL program, prefetching\n%s",
			strings.Contains(log, "promoted prefetched wal segment"), aws, prom, log)
	}
}

// TestFrontFallsBackToTheFullProgramWhenTheWALProgramCannotRun: a WAL
// program that cannot be executed (here not executable at all) costs one
// line on stderr; the full program then does the call, so archiving goes
// on.
func TestFrontFallsBackToTheFullProgramWhenTheWALProgramCannotRun(t *testing.T) {
	core := pgtest.BuildWalden(t)
	root, err := os.MkdirTemp("", "walden-front-broken-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	for _, d := range []string{"", "bin", "lib", "lib/walden", "store"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	front := filepath.Join(root, "bin", "walden")
	if err := buildFront(front); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(core, filepath.Join(root, "lib", "walden", "walden")); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(root, "lib", "walden", "walden-wal")
	if err := os.WriteFile(broken, []byte("not a program\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, root)
	env := []string{"WALE_FILE_PREFIX=file://localhost" + filepath.Join(root, "store"), "WALE_LOG_DESTINATION=stderr",
		"WALDEN_SOCKET=" + filepath.Join(root, "no-agent.sock"), "WALDEN_LOCK_DIR=" + root}
	missing := filepath.Join(root, "pg_wal", "000000010000000000000001")
	r := runFront(t, env, root, front, front, "wal-push", missing)
	full := runAs(t, env, root, front, core, "wal-push", missing)
	first, rest, _ := strings.Cut(r.stderr, "\n")
	if want := "walden: cannot run walden's WAL program " + broken; !strings.HasPrefix(first, want) || !strings.HasSuffix(first, "; running the full program") {
		t.Errorf("first line %q, want %q ... running the full program", first, want)
	}
	if r.ran != fullPrg {
		t.Errorf("the front ran %q, want the full program", r.ran)
	}
	r.stderr = rest
	same(t, "wal-push with a broken WAL program", r, full)
	if r.code != 1 {
		t.Errorf("exit %d, want the full program's 1 for a missing file", r.code)
	}
}

// TestWALProgramRefusesAGCSPrefixInOneLine: run directly (the front never
// does this), the WAL program has no GCS client and says so, naming the
// prefix, with each command's failure status.
func TestWALProgramRefusesAGCSPrefixInOneLine(t *testing.T) {
	l := installed(t)
	tmp := t.TempDir()
	env := []string{"WALE_GS_PREFIX=gs://walden-front-test/x", "WALE_LOG_DESTINATION=stderr", "STORAGE_EMULATOR_HOST=127.0.0.1:1",
		"WALDEN_SOCKET=" + filepath.Join(tmp, "no-agent.sock"), "WALDEN_LOCK_DIR=" + tmp}
	seg := filepath.Join(tmp, "000000010000000000000001")
	if err := os.WriteFile(seg, make([]byte, 16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"wal-push", seg}, 1},
		{[]string{"wal-fetch", "000000010000000000000001", filepath.Join(tmp, "RECOVERYXLOG")}, 200},
	} {
		cmd := exec.Command(l.walPrg, tc.args...)
		cmd.Env = env
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
			t.Errorf("%v: %v, want exit %d\n%s", tc.args, err, tc.code, errb.String())
		}
		msg := errb.String()
		if !strings.Contains(msg, "gs://walden-front-test/x/: this is walden's WAL program, built without the GCS client") ||
			!strings.Contains(msg, "/usr/bin/walden") || strings.Count(msg, "MSG:") != 1 {
			t.Errorf("%v: stderr %q does not refuse in one message naming the prefix", tc.args, msg)
		}
	}
}
