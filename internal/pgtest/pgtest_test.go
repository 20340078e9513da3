package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain checks, after all tests, that none of them built walden:
// cmd/walden is developed separately and may not build yet, so this
// package's tests must not depend on it. Checking here rather than in a
// last test holds under -shuffle too.
func TestMain(m *testing.M) {
	code := m.Run()
	if invoked.Load() {
		fmt.Fprintln(os.Stderr, "pgtest: BuildWalden was invoked by this package's tests")
		code = 1
	}
	os.Exit(code)
}

func TestClusterLifecycle(t *testing.T) {
	c := New(t, Options{Conf: map[string]string{"wal_level": "logical"}})
	if fi, err := os.Stat(c.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v %v", fi, err)
	}
	c.Start(t)

	if got := c.Psql(t, "SELECT 1 + 1"); got != "2" {
		t.Fatalf("SELECT 1 + 1 = %q", got)
	}
	for setting, want := range map[string]string{
		"wal_level":               "logical", // from Options.Conf
		"fsync":                   "off",
		"listen_addresses":        "",
		"unix_socket_directories": c.SocketDir,
		"port":                    strconv.Itoa(c.Port),
		"shared_buffers":          "64MB",
	} {
		if got := c.Psql(t, "SHOW "+setting); got != want {
			t.Errorf("SHOW %s = %q, want %q", setting, got, want)
		}
	}
	if _, err := c.Query("SELECT * FROM no_such_table"); err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("Query of a missing table: err = %v, want psql's error", err)
	}

	conn := c.Conn(t)
	var user string
	if err := conn.QueryRow(context.Background(), "SELECT current_user").Scan(&user); err != nil || user != "postgres" {
		t.Fatalf("pgx current_user = %q, %v", user, err)
	}

	c.Pgbench(t, "-i", "-s", "1", "-q")
	if got := c.Psql(t, "SELECT count(*) FROM pgbench_accounts"); got != "100000" {
		t.Fatalf("pgbench_accounts has %s rows", got)
	}

	// Strings with quotes and backslashes survive the trip through the
	// configuration file.
	name := "it's a \\ test\non two lines"
	c.WriteConf(t, map[string]string{"pgtest.probe": Quote(name)})
	c.Restart(t)
	if got := c.Psql(t, "SHOW pgtest.probe"); got != name {
		t.Errorf("pgtest.probe = %q, want %q", got, name)
	}

	c.Stop(t)
	if c.running() {
		t.Fatal("postmaster.pid still there after Stop")
	}
	if log := c.LogContents(); !strings.Contains(log, "database system is shut down") {
		t.Fatalf("server log lacks the shutdown message:\n%s", log)
	}
}

// TestRestoredCluster copies a running cluster with pg_basebackup into a
// NoInit cluster, as a restore would: the copy brings the source's
// postgresql.conf, and must still start on its own port and socket beside
// the source.
func TestRestoredCluster(t *testing.T) {
	src := New(t, Options{})
	src.Start(t)
	src.Psql(t, "CREATE TABLE t AS SELECT generate_series(1, 10) AS i")

	dst := New(t, Options{NoInit: true, Conf: map[string]string{"cluster_name": Quote("restored")}})
	if entries, err := os.ReadDir(dst.Dir); err != nil || len(entries) != 0 {
		t.Fatalf("NoInit data dir: %v %v", entries, err)
	}
	if _, err := RunAs(t, src.Env(), "", filepath.Join(src.BinDir, "pg_basebackup"),
		"-D", dst.Dir, "-X", "stream", "--no-sync"); err != nil {
		t.Fatal(err)
	}
	dst.Start(t)
	dst.WaitReady(t, 30*time.Second)
	dst.WaitRecoveryDone(t, 30*time.Second)
	if dst.Port == src.Port {
		t.Fatalf("both clusters on port %d", dst.Port)
	}
	if got := dst.Psql(t, "SELECT sum(i) FROM t"); got != "55" {
		t.Fatalf("sum = %q", got)
	}
	if got := dst.Psql(t, "SHOW cluster_name"); got != "restored" {
		t.Fatalf("cluster_name = %q: Options.Conf not applied at first Start", got)
	}
	dst.StopImmediate(t)
	src.Psql(t, "SELECT 1") // untouched by the copy
}

func TestRunAs(t *testing.T) {
	c := New(t, Options{})
	out, err := RunAs(t, append(c.Env(), "WALDEN_TEST=x"), c.Base, "sh", "-c", `id -u; echo "$PGPORT $WALDEN_TEST $HOME"; pwd`)
	if err != nil {
		t.Fatal(err)
	}
	a := mustAccount(t)
	want := fmt.Sprintf("%d\n%d x %s\n%s\n", a.uid, c.Port, a.home, c.Base)
	if string(out) != want {
		t.Fatalf("RunAs output %q, want %q", out, want)
	}
	if _, err := RunAs(t, nil, "", "sh", "-c", "echo oops >&2; exit 3"); err == nil || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("failing command: err = %v, want its stderr", err)
	}

	// Chown hands a root-made tree to postgres.
	dir := filepath.Join(c.Base, "tree")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	Chown(t, dir)
	if _, err := RunAs(t, nil, "", "touch", filepath.Join(dir, "sub", "f")); err != nil {
		t.Fatal(err)
	}
}

func TestBinDir(t *testing.T) {
	dir := BinDir(t)
	if !hasServer(dir) {
		t.Fatalf("BinDir %s has no server", dir)
	}
	t.Setenv("WALDEN_PG_BINDIR", dir)
	if got := BinDir(t); got != dir {
		t.Fatalf("with WALDEN_PG_BINDIR: %s", got)
	}
	t.Setenv("WALDEN_PG_BINDIR", t.TempDir())
	if _, err := findBinDir(); err == nil {
		t.Fatal("an empty WALDEN_PG_BINDIR was accepted")
	}

	vers := []string{"9.6", "15", "10", "16"}
	slices.SortFunc(vers, func(a, b string) int {
		va, _ := parseVersion(a)
		vb, _ := parseVersion(b)
		return slices.Compare(va, vb)
	})
	if !slices.Equal(vers, []string{"9.6", "10", "15", "16"}) {
		t.Fatalf("version order %v", vers)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":          `''`,
		"/tmp/x":    `'/tmp/x'`,
		"it's":      `'it''s'`,
		`a\b`:       `'a\\b'`,
		"a\nb":      `'a\nb'`,
		`walden %p`: `'walden %p'`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}
