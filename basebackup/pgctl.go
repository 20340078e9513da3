package basebackup

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server runs PostgreSQL on a restored data directory as its owner.
type Server struct {
	PGData  string
	BinDir  string
	owner   string // run as this user via runuser when walden runs as root
	LogFile string
}

// NewServer prepares to run the cluster in pgdata with the programs of its
// major version. As root it runs them as the data directory's owner
// (PostgreSQL refuses to run as root).
func NewServer(pgdata string) (*Server, error) {
	bin, err := BinDir(pgdata)
	if err != nil {
		return nil, err
	}
	s := &Server{PGData: pgdata, BinDir: bin, LogFile: filepath.Join(pgdata, "log", "walden-restore.log")}
	if os.Geteuid() == 0 {
		uid, _ := ownerOf(pgdata)
		if uid <= 0 {
			return nil, fmt.Errorf("%s belongs to root, and PostgreSQL refuses to run as root: chown it to the database user", pgdata)
		}
		u, err := user.LookupId(strconv.Itoa(uid))
		if err != nil {
			return nil, fmt.Errorf("owner %d of %s: %w", uid, pgdata, err)
		}
		s.owner = u.Username
	}
	return s, nil
}

func (s *Server) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	p := filepath.Join(s.BinDir, prog)
	if s.owner != "" {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", s.owner, "--", p}, args...)...)
	}
	return exec.CommandContext(ctx, p, args...)
}

// Start starts the server without waiting (pg_ctl -W): a server in archive
// recovery with hot_standby off accepts no connection before it is done.
// serverOpts are passed to postgres (pg_ctl -o) and override every
// configuration file for this run only.
func (s *Server) Start(ctx context.Context, serverOpts ...string) error {
	return s.start(ctx, false, serverOpts)
}

// StartReady starts the server and waits until it accepts connections.
func (s *Server) StartReady(ctx context.Context) error { return s.start(ctx, true, nil) }

// Stop shuts the server down (fast mode) and waits for it to be gone.
func (s *Server) Stop(ctx context.Context) error {
	cmd := s.command(ctx, "pg_ctl", "-D", s.PGData, "-m", "fast", "-w", "-t", "300", "stop")
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Query runs one statement on the running server and returns its output.
func (s *Server) Query(ctx context.Context, sql string) (string, error) {
	_, sock, port, ok := s.postmaster()
	if !ok {
		return "", fmt.Errorf("PostgreSQL is not running in %s", s.PGData)
	}
	return s.query(ctx, sock, port, sql)
}

// NoArchivingOpts are server options that keep every archive_command and
// archive_library from running while .ready files still pile up, so
// archiving resumes complete once the server is restarted without them.
func NoArchivingOpts(major int) []string {
	o := []string{"-c", "archive_command=false"}
	if major >= 15 {
		o = append(o, "-c", "archive_library=''")
	}
	return o
}

func (s *Server) start(ctx context.Context, wait bool, serverOpts []string) error {
	logDir := filepath.Dir(s.LogFile)
	if _, err := os.Stat(logDir); err != nil {
		if err := os.Mkdir(logDir, 0o700); err != nil {
			return err
		}
		if uid, gid := ownerOf(s.PGData); uid >= 0 {
			os.Chown(logDir, uid, gid)
		}
	}
	args := []string{"-D", s.PGData, "-l", s.LogFile}
	if wait {
		args = append(args, "-w", "-t", "300")
	} else {
		args = append(args, "-W")
	}
	if len(serverOpts) > 0 {
		args = append(args, "-o", strings.Join(serverOpts, " "))
	}
	cmd := s.command(ctx, "pg_ctl", append(args, "start")...)
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// WaitPromoted waits until recovery is over: pg_is_in_recovery() answers
// false. A server that exits meanwhile (a target that cannot be reached,
// missing WAL) is an error quoting the end of its log.
func (s *Server) WaitPromoted(ctx context.Context, progress func(string)) error {
	start := time.Now()
	lastNote := time.Now()
	for {
		pid, sock, port, ok := s.postmaster()
		if !ok || !alive(pid) {
			if time.Since(start) > 5*time.Second || (ok && !alive(pid)) {
				return fmt.Errorf("PostgreSQL stopped before recovery finished: %s (server log: %s)", s.lastFatal(), s.LogFile)
			}
		} else if out, err := s.query(ctx, sock, port, "SELECT pg_is_in_recovery()"); err == nil && out == "f" {
			return nil
		}
		if progress != nil && time.Since(lastNote) > 30*time.Second {
			progress(fmt.Sprintf("still recovering after %s", time.Since(start).Round(time.Second)))
			lastNote = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// postmaster reads postmaster.pid: pid, socket directory and port.
func (s *Server) postmaster() (pid int, sock string, port int, ok bool) {
	b, err := os.ReadFile(filepath.Join(s.PGData, "postmaster.pid"))
	if err != nil {
		return 0, "", 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 6 {
		return 0, "", 0, false
	}
	pid, _ = strconv.Atoi(strings.TrimSpace(lines[0]))
	port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	sock = strings.TrimSpace(lines[4])
	if sock == "" {
		sock = strings.TrimSpace(lines[5])
		if sock == "*" || sock == "" {
			sock = "localhost"
		}
	}
	return pid, sock, port, pid > 0
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// query runs one statement with psql over the server's own socket, as the
// data directory's owner, and returns its output.
func (s *Server) query(ctx context.Context, host string, port int, sql string) (string, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	args := []string{"-X", "-A", "-t", "-q", "-h", host, "-p", strconv.Itoa(port), "-d", "postgres", "-c", sql}
	if s.owner != "" {
		args = append(args, "-U", s.owner)
	}
	cmd := s.command(qctx, "psql", args...)
	cmd.Dir = "/"
	cmd.Env = cleanPGEnv()
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		return "", err
	}
	return strings.TrimSpace(stdout.String()), nil
}

// cleanPGEnv drops PG* variables, which would redirect psql elsewhere.
func cleanPGEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			out = append(out, kv)
		}
	}
	return out
}

// lastFatal is the server log's last FATAL or PANIC message, which says
// why the server stopped; else its last line.
func (s *Server) lastFatal() string {
	b, _ := os.ReadFile(s.LogFile)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		for _, tag := range []string{"FATAL:", "PANIC:"} {
			if j := strings.Index(lines[i], tag); j >= 0 {
				return strings.Join(strings.Fields(lines[i][j:]), " ")
			}
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}
