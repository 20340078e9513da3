package verify

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

	"github.com/walden-pg/walden/basebackup"
)

// drillServer is a private PostgreSQL on the scratch directory: data in
// scratch/data, its only socket in scratch/sock, no TCP listener.
type drillServer struct {
	scratch, data, sock, log, bin string
	tmpSock                       string // socket directory outside scratch, removed at stop
	owner                         string // runs as this user when walden is root
	started                       bool
}

func newDrillServer(scratch, bin string) (*drillServer, error) {
	s := &drillServer{scratch: scratch, data: filepath.Join(scratch, "data"), sock: filepath.Join(scratch, "sock"),
		log: filepath.Join(scratch, "postgres.log"), bin: bin}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: the drill runs as postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, userErr("running as root, the drill needs the postgres user to run the server: %v", err)
		}
		s.owner = u.Username
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	// A socket path is limited to 107 bytes: with a long scratch path the
	// private socket directory goes under the temporary directory instead.
	if len(s.sock)+len("/.s.PGSQL.5432") > 100 {
		d, err := os.MkdirTemp("", "walden-drill-")
		if err != nil {
			return nil, err
		}
		s.sock, s.tmpSock = d, d
	}
	for _, d := range []string{s.scratch, s.data, s.sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		if uid >= 0 {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range []struct{ name, content string }{
		{"pg_hba.conf", "local all all trust\n"}, // only the private socket exists
		{"pg_ident.conf", ""},
	} {
		p := filepath.Join(s.scratch, f.name)
		if err := os.WriteFile(p, []byte(f.content), 0o600); err != nil {
			return nil, err
		}
		if uid >= 0 {
			os.Chown(p, uid, gid)
		}
	}
	return s, nil
}

func (s *drillServer) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	p := filepath.Join(s.bin, prog)
	var cmd *exec.Cmd
	if s.owner != "" {
		cmd = exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=" + s.owner, "--regid=" + s.owner, "--init-groups", "--", p}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, p, args...)
	}
	cmd.Dir = s.scratch
	return cmd
}

// start runs pg_ctl with the settings that keep the drill private; given
// on the command line they win over anything the backup's configuration
// says (a data_directory or port of the live server, archiving).
func (s *drillServer) start(ctx context.Context) error {
	q := basebackup.ShellQuote
	opts := []string{
		"-c data_directory=" + q(s.data),
		"-c hba_file=" + q(filepath.Join(s.scratch, "pg_hba.conf")),
		"-c ident_file=" + q(filepath.Join(s.scratch, "pg_ident.conf")),
		"-c listen_addresses=''",
		"-c unix_socket_directories=" + q(s.sock),
		"-c port=5432",
		"-c archive_mode=off",
		"-c logging_collector=off",
		"-c primary_conninfo=''",
		"-c hot_standby=on",
	}
	cmd := s.command(ctx, "pg_ctl", "-D", s.data, "-l", s.log, "-W", "-o", strings.Join(opts, " "), "start")
	s.started = true
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// waitPromoted waits until recovery has ended; a server that exits first
// is an error quoting its log.
func (s *drillServer) waitPromoted(ctx context.Context) error {
	began := time.Now()
	for {
		pid := s.pid()
		if pid <= 0 || !pidAlive(pid) {
			if time.Since(began) > 10*time.Second || pid > 0 {
				return fmt.Errorf("PostgreSQL stopped before recovery finished: %s", s.lastFatal())
			}
		} else if out, err := s.psql(ctx, "SELECT pg_is_in_recovery()"); err == nil && out == "f" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *drillServer) pid() int {
	b, err := os.ReadFile(filepath.Join(s.data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	n, _ := strconv.Atoi(strings.TrimSpace(line))
	return n
}

func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

func (s *drillServer) psql(ctx context.Context, sql string) (string, error) {
	qctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	args := []string{"-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", s.sock, "-p", "5432", "-d", "postgres", "-c", sql}
	if s.owner != "" {
		args = append(args, "-U", s.owner)
	}
	cmd := s.command(qctx, "psql", args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// promotionPoint is where replay ended: the switch point recorded in the
// newest timeline history file, which promotion writes.
func (s *drillServer) promotionPoint() (uint64, error) {
	p, err := newestHistory(filepath.Join(s.data, "pg_wal"))
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	h, err := parseHistory(b)
	if err != nil || len(h) == 0 {
		return 0, fmt.Errorf("%s: no switch point (%v)", p, err)
	}
	return h[len(h)-1].Switch, nil
}

// stop shuts the server down (fast, then immediate) if it was started.
func (s *drillServer) stop() {
	if s.tmpSock != "" {
		defer os.RemoveAll(s.tmpSock)
	}
	if !s.started || s.pid() <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.command(ctx, "pg_ctl", "-D", s.data, "-m", "fast", "-w", "stop").Run(); err != nil {
		s.command(ctx, "pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop").Run()
	}
}

func (s *drillServer) lastFatal() string {
	b, _ := os.ReadFile(s.log)
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

func (s *drillServer) logTail(n int) string {
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
