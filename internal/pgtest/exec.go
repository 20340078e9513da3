package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// pgAccount is the OS account that owns clusters and runs their commands.
type pgAccount struct {
	name   string
	uid    int
	gid    int
	groups []uint32
	home   string
	// switchUser is false when the tests already run as a non-root user:
	// PostgreSQL is then run as that user and nothing is chowned.
	switchUser bool
}

var account = sync.OnceValues(func() (*pgAccount, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("pgtest: current user: %w", err)
		}
		return &pgAccount{name: u.Username, uid: os.Geteuid(), gid: os.Getegid(), home: u.HomeDir}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: PostgreSQL refuses to run as root and there is no postgres user to run it as: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("pgtest: postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("pgtest: postgres gid %q: %w", u.Gid, err)
	}
	a := &pgAccount{name: u.Username, uid: uid, gid: gid, home: u.HomeDir, switchUser: true}
	// Keep postgres's own supplementary groups (ssl-cert on Debian) and, as
	// importantly, drop root's.
	ids, _ := u.GroupIds()
	for _, s := range ids {
		if g, err := strconv.ParseUint(s, 10, 32); err == nil {
			a.groups = append(a.groups, uint32(g))
		}
	}
	if a.groups == nil {
		a.groups = []uint32{}
	}
	return a, nil
})

func mustAccount(t testing.TB) *pgAccount {
	t.Helper()
	a, err := account()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// childEnv is the environment of commands run as postgres: ours without PG*
// variables (so an outer PGHOST or PGPASSWORD cannot redirect a test), with
// the identity variables of the postgres user, then extra; later entries
// win, as os/exec keeps the last value of a duplicated key.
func childEnv(a *pgAccount, extra []string) []string {
	env := make([]string, 0, len(os.Environ())+len(extra)+3)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "HOME="+a.home, "USER="+a.name, "LOGNAME="+a.name)
	return append(env, extra...)
}

// newCommand builds a command that runs as the postgres user. It switches
// credentials in the child directly rather than through runuser: there is no
// PAM session and no intermediate process, so killing the command (or a
// context timeout) reaches the program itself.
func newCommand(ctx context.Context, a *pgAccount, env []string, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = childEnv(a, env)
	if dir == "" {
		// The caller's working directory may be under /root (0700), which
		// postgres cannot enter; PostgreSQL tools then fail or warn.
		dir = "/"
	}
	cmd.Dir = dir
	if a.switchUser {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid:    uint32(a.uid),
			Gid:    uint32(a.gid),
			Groups: a.groups,
		}}
	}
	return cmd
}

// Command returns a command that will run name as the postgres user with
// env added to the environment, in dir ("" means /). Use it instead of RunAs
// when the test needs stdin, separate streams or a running process.
func Command(t testing.TB, env []string, dir, name string, args ...string) *exec.Cmd {
	t.Helper()
	return newCommand(context.Background(), mustAccount(t), env, dir, name, args...)
}

// RunAs runs name as the postgres user with env added to the environment,
// in dir ("" means /), and returns its standard output. Standard error is
// logged to t and, when the command fails, included in the error.
func RunAs(t testing.TB, env []string, dir string, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := Command(t, env, dir, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if stderr.Len() > 0 {
		t.Logf("pgtest: %s stderr:\n%s", filepath.Base(name), stderr.Bytes())
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// Chown gives path and everything below it to the postgres user, e.g. after
// the test wrote files as root that the server or walden must own.
func Chown(t testing.TB, path string) {
	t.Helper()
	if err := chownTree(mustAccount(t), path); err != nil {
		t.Fatal(err)
	}
}

func chownTree(a *pgAccount, path string) error {
	if !a.switchUser {
		return nil
	}
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, a.uid, a.gid); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		return nil
	})
}
