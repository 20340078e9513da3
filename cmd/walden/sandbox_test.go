package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
)

// startSandboxedAgent runs the agent as postgres in a private mount
// namespace where store is a read-only bind mount: what systemd's
// ProtectSystem=strict does to a path missing from ReadWritePaths.
func startSandboxedAgent(t *testing.T, bin, env, pgdata, store, addr string, extraEnv []string) *runningAgent {
	t.Helper()
	r := &runningAgent{stderr: &lockedBuffer{}, addr: addr, exited: make(chan struct{})}
	script := `set -e
mount --bind "$1" "$1"
mount -o remount,ro,bind "$1"
exec setpriv --reuid=postgres --regid=postgres --init-groups "$2" --envdir "$3" agent --pgdata "$4"`
	// unshare and sh exec in turn, so the agent keeps this process id.
	r.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", store, bin, env, pgdata)
	r.cmd.Env = append(os.Environ(), append([]string{"HOME=/var/lib/postgresql"}, extraEnv...)...)
	r.cmd.Dir = "/"
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.waitErr = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			t.Logf("agent stderr:\n%s", lastLines(r.stderr.String(), 60))
		}
	})
	r.waitLog(t, "MSG: agent started", 20*time.Second)
	return r
}

// runCheckAsRoot runs `walden check` as root, as an operator would.
func runCheckAsRoot(t *testing.T, bin, env string, args ...string) checkRun {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--envdir", env, "check"}, args...)...)
	cmd.Env = append(os.Environ(), "WALE_LOG_DESTINATION=stderr")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := checkRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// TestCheckReportsWhatTheSandboxedAgentCannotWrite: the store is writable
// to root, who runs check, but read-only inside the agent's sandbox. The
// caller's own store check passes; the check the agent runs fails naming
// the store root and the setting to change, and the agent's backup fails
// for that reason. Without the sandbox the same check passes and the
// backup succeeds.
func TestCheckReportsWhatTheSandboxedAgentCannotWrite(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root: mount namespaces and running the agent as postgres")
	}
	bin := pgtest.BuildWalden(t)
	// The cluster archives into the store, as a backup needs its WAL there.
	c, env, store, addr := archivingCluster(t, bin, nil)
	drill := filepath.Join(store, "drills")
	writeEnvdir(t, env, map[string]string{"PGDATA": c.Dir, "WALDEN_DRILL_DIR": drill})

	ag := startSandboxedAgent(t, bin, env, c.Dir, store, addr, c.Env())
	r := runCheckAsRoot(t, bin, env, "--no-postgres", "--require-agent")
	t.Logf("walden check as root against the sandboxed agent:\n%s%s", r.stdout, r.stderr)
	prefix := "file://localhost" + store
	if !strings.Contains(r.stdout, "ok   store: wrote, read and deleted a probe at "+prefix+"\n") {
		t.Fatalf("the caller's own store check did not pass:\n%s", r.stdout)
	}
	want := []string{
		"walden check: service store: cannot write to the store " + prefix + ": " + store +
			" is read-only inside the service's sandbox (ProtectSystem=strict): add it to ReadWritePaths",
		"walden check: service drill dir: WALDEN_DRILL_DIR " + drill + " does not exist and the service cannot create it (" + store +
			" is read-only inside the service's sandbox (ProtectSystem=strict): add " + drill + " to ReadWritePaths): create it for the service's user postgres",
	}
	if r.code != 1 || strings.Join(r.problems(), "\n") != strings.Join(want, "\n") {
		t.Fatalf("want exit 1 and the problems\n%s\ngot exit %d:\n%s\nstdout:\n%s", strings.Join(want, "\n"), r.code, r.stderr, r.stdout)
	}
	for _, ok := range []string{"ok   service: the agent (pid ", "ok   service pgdata: the agent reads " + c.Dir, "ok   service pg_wal: the agent writes pg_wal "} {
		if !strings.Contains(r.stdout, ok) {
			t.Errorf("stdout lacks %q:\n%s", ok, r.stdout)
		}
	}
	n := ag.count("MSG: base backup failed")
	ag.signal(t, 10) // SIGUSR1
	ag.waitCount(t, "MSG: base backup failed", n+1, 60*time.Second)
	if !strings.Contains(ag.stderr.String(), "read-only file system") {
		t.Errorf("the backup failed for another reason:\n%s", lastLines(ag.stderr.String(), 10))
	}
	ag.stop(t)

	// No agent: skipped by default, a failure when it is required.
	r = runCheckAsRoot(t, bin, env, "--no-postgres")
	if r.code != 0 || !strings.Contains(r.stdout, "skip service: not checked from inside the service: no agent answers on ") {
		t.Fatalf("without an agent: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCheckAsRoot(t, bin, env, "--no-postgres", "--require-agent")
	if p := r.problems(); r.code != 1 || len(p) != 1 || !strings.HasPrefix(p[0], "walden check: service: the service's own access cannot be checked: no agent answers on ") {
		t.Fatalf("without an agent, --require-agent: exit %d\n%s", r.code, r.stderr)
	}

	// The same store writable inside the service: check and backup pass,
	// for root and for the service user alike.
	ag = startAgent(t, bin, env, c.Dir, addr, c.Env())
	for who, r := range map[string]checkRun{"root": runCheckAsRoot(t, bin, env, "--no-postgres", "--require-agent"), "postgres": runCheck(t, bin, env, "--no-postgres", "--require-agent")} {
		if r.code != 0 || !strings.Contains(r.stdout, "ok   service store: wrote, read and deleted a probe at "+prefix+"\n") ||
			!strings.Contains(r.stdout, "ok   service drill dir: the agent can create WALDEN_DRILL_DIR "+drill) {
			t.Fatalf("check as %s against an agent that can write: exit %d\n%s%s", who, r.code, r.stdout, r.stderr)
		}
	}
	ag.backupNow(t)
	if got := sentinels(t, store); len(got) != 1 {
		t.Fatalf("store holds %v after a backup", got)
	}
}

// TestAgentRunsWithTheFastPathOffWhenItsSocketCannotBeMade: WALDEN_SOCKET
// in a directory that cannot be created (its default /run/walden outside
// systemd) costs the fast path, not the backups.
func TestAgentRunsWithTheFastPathOffWhenItsSocketCannotBeMade(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c := pgtest.New(t, pgtest.Options{})
	store := c.MkDir(t, "store")
	blocker := filepath.Join(c.MkDir(t, "run"), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(blocker, "walden", "agent.sock")
	env, addr := agentEnvdir(t, c, store, map[string]string{"WALDEN_SOCKET": sock})
	ag := startAgent(t, bin, env, c.Dir, addr, c.Env())
	out := ag.stderr.String()
	if !strings.Contains(out, "MSG: the WAL fast path is off") || !strings.Contains(out, "Cannot listen on "+sock+" (WALDEN_SOCKET)") {
		t.Fatalf("no warning about the fast path:\n%s", out)
	}
	if code, _ := ag.get(t, "/healthz"); code != 503 {
		t.Fatalf("healthz: %d", code)
	}
	ag.stop(t)
}
