// Package pgtest runs throwaway PostgreSQL clusters for end-to-end tests.
//
// PostgreSQL refuses to run as root, so when the tests run as root (as CI
// does) every cluster, and every command run through this package, runs as
// the postgres OS user; the files it must own are chowned to it. A test
// that needs PostgreSQL fails, rather than skips, when the server binaries
// are missing: CI installs them, and a silent skip would hide the gap.
//
// Each cluster lives in its own directory under os.TempDir():
//
//	Base/data  data directory (Dir), owned by postgres, 0700
//	Base/sock  unix socket directory (SocketDir); the server never listens on TCP
//	Base/log   server log (LogFile)
//
// and is stopped and removed by t.Cleanup. Set WALDEN_PGTEST_KEEP=1 to keep
// the directory of a failed test for inspection.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgCtlTimeout bounds pg_ctl's waits for start and stop, in seconds.
const pgCtlTimeout = 120

// BinDir returns the PostgreSQL server binary directory: $WALDEN_PG_BINDIR
// if set, else the newest /usr/lib/postgresql/N/bin (Debian's layout).
func BinDir(t testing.TB) string {
	t.Helper()
	dir, err := findBinDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func findBinDir() (string, error) {
	if dir := os.Getenv("WALDEN_PG_BINDIR"); dir != "" {
		if !hasServer(dir) {
			return "", fmt.Errorf("pgtest: WALDEN_PG_BINDIR=%s has no initdb, pg_ctl and postgres", dir)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVer := "", []int(nil)
	for _, dir := range dirs {
		ver, ok := parseVersion(filepath.Base(filepath.Dir(dir)))
		if !ok || !hasServer(dir) {
			continue
		}
		if bestVer == nil || slices.Compare(ver, bestVer) > 0 {
			best, bestVer = dir, ver
		}
	}
	if best == "" {
		return "", errors.New("pgtest: no PostgreSQL server binaries in /usr/lib/postgresql/*/bin; install postgresql-NN or set WALDEN_PG_BINDIR")
	}
	return best, nil
}

// parseVersion reads "15" or "9.6" so that 10 sorts above 9.6.
func parseVersion(s string) ([]int, bool) {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// Options configures New.
type Options struct {
	// Conf holds extra postgresql.conf settings, written verbatim after the
	// defaults (so they override them); quote strings with Quote.
	Conf map[string]string
	// InitdbArgs are appended to initdb's arguments, after the defaults.
	InitdbArgs []string
	// NoInit leaves the data directory empty, for clusters restored into it
	// (e.g. by backup-fetch). The default settings and Conf are then
	// appended to postgresql.conf at the first Start.
	NoInit bool
}

// Cluster is one test PostgreSQL cluster.
type Cluster struct {
	Dir       string // data directory
	SocketDir string // the only place the server listens
	Port      int
	BinDir    string
	Base      string // scratch directory holding Dir, SocketDir and the log
	LogFile   string

	opts        Options
	confPending bool
	portLock    *os.File
}

// New makes a cluster (initdb, unless opts.NoInit) that is not yet started.
// It is stopped and removed when the test ends.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	a := mustAccount(t)
	binDir := BinDir(t)
	sweepStale()

	base, err := makeScratch("cluster", binDir)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{
		Dir:       filepath.Join(base, "data"),
		SocketDir: filepath.Join(base, "sock"),
		BinDir:    binDir,
		Base:      base,
		LogFile:   filepath.Join(base, "log", "postgres.log"),
		opts:      opts,
	}
	t.Cleanup(func() { c.cleanup(t) })

	// PostgreSQL insists on 0700 (or 0750) for the data directory.
	for dir, mode := range map[string]os.FileMode{c.Dir: 0o700, c.SocketDir: 0o755, filepath.Dir(c.LogFile): 0o755} {
		if err := os.Mkdir(dir, mode); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		if err := os.Chmod(dir, mode); err != nil { // umask may have narrowed it
			t.Fatalf("pgtest: %v", err)
		}
		if err := chownTree(a, dir); err != nil {
			t.Fatal(err)
		}
	}
	c.Port, c.portLock, err = allocPort()
	if err != nil {
		t.Fatal(err)
	}

	if opts.NoInit {
		c.confPending = true
		return c
	}
	// C locale: works whatever locales the machine has generated, and keeps
	// server messages in English for tests that match on them.
	args := append([]string{"-D", c.Dir, "-U", "postgres", "--auth=trust", "--no-sync",
		"--locale=C", "--encoding=UTF8", "--no-instructions"}, opts.InitdbArgs...)
	if out, err := c.run("initdb", args...); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	c.WriteConf(t, c.defaultConf())
	if len(opts.Conf) > 0 {
		c.WriteConf(t, opts.Conf)
	}
	return c
}

func (c *Cluster) defaultConf() map[string]string {
	return map[string]string{
		"listen_addresses":        Quote(""),
		"unix_socket_directories": Quote(c.SocketDir),
		"port":                    strconv.Itoa(c.Port),
		"fsync":                   "off",
		"shared_buffers":          "64MB",
		"max_wal_size":            "1GB",
		"log_line_prefix":         Quote("%m [%p] "),
	}
}

// run runs a PostgreSQL binary from BinDir as postgres and returns its
// combined output.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	a, err := account()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), (pgCtlTimeout+60)*time.Second)
	defer cancel()
	return newCommand(ctx, a, nil, c.Base, filepath.Join(c.BinDir, name), args...).CombinedOutput()
}

// Start starts the server and waits until it accepts connections (for a
// cluster in archive recovery: until it is consistent, or recovery ended).
// Port, socket directory and listen_addresses are forced on the command
// line, because a restored data directory carries another cluster's
// postgresql.conf.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if c.confPending {
		c.WriteConf(t, c.defaultConf())
		if len(c.opts.Conf) > 0 {
			c.WriteConf(t, c.opts.Conf)
		}
		c.confPending = false
	}
	// pg_ctl hands -o to /bin/sh, hence the shell quoting.
	o := fmt.Sprintf("-p %d -k %s -c listen_addresses=''", c.Port, shellQuote(c.SocketDir))
	out, err := c.run("pg_ctl", "-D", c.Dir, "-l", c.LogFile, "-w", "-t", strconv.Itoa(pgCtlTimeout), "-o", o, "start")
	if err != nil {
		t.Fatalf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, c.logTail())
	}
}

// Stop shuts the server down with a fast shutdown (checkpoint, then exit).
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	c.stop(t, "fast")
}

// StopImmediate stops the server without a shutdown checkpoint, as a crash
// would; the next start runs crash recovery.
func (c *Cluster) StopImmediate(t testing.TB) {
	t.Helper()
	c.stop(t, "immediate")
}

func (c *Cluster) stop(t testing.TB, mode string) {
	t.Helper()
	out, err := c.run("pg_ctl", "-D", c.Dir, "-w", "-t", strconv.Itoa(pgCtlTimeout), "-m", mode, "stop")
	if err != nil {
		t.Fatalf("pgtest: pg_ctl stop -m %s: %v\n%s\n%s", mode, err, out, c.logTail())
	}
}

// Restart stops the server (fast) and starts it again.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.Stop(t)
	c.Start(t)
}

// Reload makes the server re-read its configuration files.
func (c *Cluster) Reload(t testing.TB) {
	t.Helper()
	if out, err := c.run("pg_ctl", "-D", c.Dir, "reload"); err != nil {
		t.Fatalf("pgtest: pg_ctl reload: %v\n%s", err, out)
	}
}

// running reports whether a postmaster.pid exists, i.e. a server was
// started and has not exited cleanly.
func (c *Cluster) running() bool {
	_, err := os.Stat(filepath.Join(c.Dir, "postmaster.pid"))
	return err == nil
}

func (c *Cluster) cleanup(t testing.TB) {
	if c.running() {
		stopImmediate(c.BinDir, c.Dir)
	}
	if t.Failed() {
		t.Logf("pgtest: cluster %s\n%s", c.Base, c.logTail())
	}
	if c.portLock != nil {
		c.portLock.Close()
	}
	if t.Failed() && os.Getenv("WALDEN_PGTEST_KEEP") != "" {
		t.Logf("pgtest: keeping %s", c.Base)
		return
	}
	os.RemoveAll(c.Base)
}

// WaitReady waits until the server accepts queries.
func (c *Cluster) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	c.poll(t, timeout, "accept connections", func() (bool, error) {
		out, err := c.Query("SELECT 1")
		return err == nil && out == "1", err
	})
}

// WaitRecoveryDone waits until the server has left recovery and accepts
// writes.
func (c *Cluster) WaitRecoveryDone(t testing.TB, timeout time.Duration) {
	t.Helper()
	c.poll(t, timeout, "finish recovery", func() (bool, error) {
		out, err := c.Query("SELECT pg_is_in_recovery()")
		return err == nil && out == "f", err
	})
}

func (c *Cluster) poll(t testing.TB, timeout time.Duration, what string, done func() (bool, error)) {
	t.Helper()
	start := time.Now()
	var lastErr error
	for {
		ok, err := done()
		if ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		// A server that exited will never get there; say so now rather than
		// at the deadline. The grace period covers a start still under way.
		if !c.running() && time.Since(start) > 2*time.Second {
			t.Fatalf("pgtest: server is not running, waiting for it to %s (last error: %v)\n%s", what, lastErr, c.logTail())
		}
		if time.Since(start) > timeout {
			t.Fatalf("pgtest: server did not %s within %v (last error: %v)\n%s", what, timeout, lastErr, c.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Psql runs sql with psql as postgres on database postgres and returns its
// trimmed, unaligned, tuples-only output. It fails the test on any error.
func (c *Cluster) Psql(t testing.TB, sql string) string {
	t.Helper()
	out, err := c.Query(sql)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Query is Psql for callers without a testing.TB, such as polling loops.
func (c *Cluster) Query(sql string) (string, error) {
	a, err := account()
	if err != nil {
		return "", err
	}
	cmd := newCommand(context.Background(), a, nil, c.Base, filepath.Join(c.BinDir, "psql"),
		"-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
		"-h", c.SocketDir, "-p", strconv.Itoa(c.Port), "-U", "postgres", "-d", "postgres", "-c", sql)
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("pgtest: psql -c %q: %w: %s", sql, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Conn opens a pgx connection as postgres over the unix socket; it is
// closed when the test ends.
func (c *Cluster) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	connStr := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable connect_timeout=10",
		c.SocketDir, c.Port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connStr)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn.Close(ctx)
	})
	return conn
}

// Env returns the libpq variables that point a child process (walden,
// pgbench, psql) at this cluster.
func (c *Cluster) Env() []string {
	return []string{
		"PGHOST=" + c.SocketDir,
		"PGPORT=" + strconv.Itoa(c.Port),
		"PGUSER=postgres",
		"PGDATABASE=postgres",
	}
}

// Pgbench runs pgbench as postgres against the cluster's postgres database
// and returns its combined output; it fails the test if pgbench fails.
func (c *Cluster) Pgbench(t testing.TB, args ...string) string {
	t.Helper()
	cmd := Command(t, c.Env(), c.Base, filepath.Join(c.BinDir, "pgbench"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgtest: pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// BaseCopy copies the running cluster into dir with pg_basebackup -X none
// (a fast checkpoint first): a data directory without WAL, for recovery
// that must fetch every segment from an archive.
func (c *Cluster) BaseCopy(t testing.TB, dir string) {
	t.Helper()
	if out, err := RunAs(t, c.Env(), "", filepath.Join(c.BinDir, "pg_basebackup"),
		"-D", dir, "-X", "none", "-h", c.SocketDir, "-p", fmt.Sprint(c.Port), "-U", "postgres", "--checkpoint=fast"); err != nil {
		t.Fatalf("pgtest: pg_basebackup: %v %s", err, out)
	}
}

// MkDir creates a directory named name under Base, owned by postgres and
// removed with the cluster: a place for archives or restores that the
// server or walden, running as postgres, must write.
func (c *Cluster) MkDir(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(c.Base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	Chown(t, dir)
	return dir
}

// LogContents returns the server log, or "" if there is none yet.
func (c *Cluster) LogContents() string {
	b, _ := os.ReadFile(c.LogFile)
	return string(b)
}

// logTail is the end of the server log, for failure messages.
func (c *Cluster) logTail() string {
	const max = 8 << 10
	s := c.LogContents()
	if len(s) > max {
		s = "..." + s[len(s)-max:]
	}
	return "--- server log " + c.LogFile + " ---\n" + s
}

// WriteConf appends settings to postgresql.conf (creating it, owned by
// postgres, if missing). Values are written verbatim: numbers, units and
// booleans as they are, strings through Quote. Later lines override earlier
// ones; the server sees the change on Restart, or on Reload for settings
// that allow it.
func (c *Cluster) WriteConf(t testing.TB, settings map[string]string) {
	t.Helper()
	path := filepath.Join(c.Dir, "postgresql.conf")
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	var b strings.Builder
	b.WriteString("\n# pgtest\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = %s\n", k, settings[k])
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		Chown(t, path)
	}
}

// confEscaper escapes what postgresql.conf strings cannot hold literally:
// backslash starts an escape there (unlike in SQL with
// standard_conforming_strings, so Quote is not for SQL literals), and a
// raw line break would end the line.
var confEscaper = strings.NewReplacer(`\`, `\\`, "'", "''", "\n", `\n`, "\r", `\r`)

// Quote makes s a postgresql.conf string value.
func Quote(s string) string {
	return "'" + confEscaper.Replace(s) + "'"
}

// shellQuote single-quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// WaitArchived waits until WAL segment seg has been archived: the
// archiver's last_archived_wal reached it, or its status file is .done
// (wal-push's pool archives other ready segments and marks them done
// itself, so pg_stat_archiver never names them), or the finished segment
// is gone from pg_wal (recycled, which PostgreSQL does only once archived).
func (c *Cluster) WaitArchived(t testing.TB, seg string, timeout time.Duration) {
	t.Helper()
	wal := filepath.Join(c.Dir, "pg_wal")
	c.poll(t, timeout, "archive "+seg, func() (bool, error) {
		if _, err := os.Stat(filepath.Join(wal, "archive_status", seg+".done")); err == nil {
			return true, nil
		}
		out, err := c.Query("SELECT coalesce(last_archived_wal, '') >= '" + seg + "', pg_walfile_name(pg_current_wal_lsn()) > '" + seg + "' FROM pg_stat_archiver")
		if err != nil {
			return false, err
		}
		archived, finished, _ := strings.Cut(out, "|")
		if archived == "t" {
			return true, nil
		}
		if finished == "t" {
			if _, err := os.Stat(filepath.Join(wal, seg)); errors.Is(err, fs.ErrNotExist) {
				return true, nil
			}
		}
		return false, nil
	})
}
