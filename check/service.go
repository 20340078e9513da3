package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walden-pg/walden/storage"
)

// The agent runs under systemd's sandbox (ProtectSystem=strict and its
// ReadWritePaths), so paths the calling user can write may be read-only to
// the agent. These checks run inside the agent and are reported apart from
// the caller's own, named "service ...".

// ServiceInput is what the agent checks from inside its sandbox.
type ServiceInput struct {
	Store  storage.Store
	Prefix storage.Prefix
	PGData string
	// LockDir is where a base backup takes its lock; "" skips it.
	LockDir string
	// DrillDir is WALDEN_DRILL_DIR; "" skips it.
	DrillDir string
	Timeout  time.Duration
	ProbeKey string
}

// ServiceReport is the agent's answer to a check request.
type ServiceReport struct {
	Pid    int      `json:"pid"`
	User   string   `json:"user"`
	Prefix string   `json:"prefix"`
	PGData string   `json:"pgdata"`
	Checks []Result `json:"checks"`
}

// RunService performs the checks inside the agent.
func RunService(ctx context.Context, in ServiceInput) *ServiceReport {
	if in.Timeout <= 0 {
		in.Timeout = DefaultTimeout
	}
	rep := &ServiceReport{Pid: os.Getpid(), User: userName(), Prefix: in.Prefix.Raw, PGData: in.PGData}
	res, ok := withTimeout(ctx, in.Timeout, func(ctx context.Context) Result {
		return serviceStore(ctx, in)
	})
	if !ok {
		res = fail("service store", "the probe at %s did not finish within %v", in.Prefix.Raw, in.Timeout)
	}
	rep.Checks = append(rep.Checks, res)
	rep.Checks = append(rep.Checks, servicePGData(in.PGData, rep.User)...)
	if in.LockDir != "" {
		rep.Checks = append(rep.Checks, writableDir("service lock dir", in.LockDir, "the base backup lock directory", rep.User))
	}
	if in.DrillDir != "" {
		rep.Checks = append(rep.Checks, writableDir("service drill dir", in.DrillDir, "WALDEN_DRILL_DIR", rep.User))
	}
	return rep
}

func userName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Getuid())
}

// serviceStore is the caller's store probe run by the agent; for a file
// store it also proves the directories backups and WAL go to writable, as
// the probe only creates its own.
func serviceStore(ctx context.Context, in ServiceInput) Result {
	root := ""
	if in.Prefix.Scheme == "file" {
		root = filepath.Clean("/" + in.Prefix.Path)
		if err := dirAccess(root); err != nil {
			return fail("service store", "cannot write to the store %s: %s", in.Prefix.Raw, explain(err, root, userName()))
		}
		for _, sub := range []string{"basebackups_005", "wal_005"} {
			d := filepath.Join(root, sub)
			if _, err := os.Stat(d); err != nil {
				continue // created on first use, under the root just checked
			}
			if err := dirAccess(d); err != nil {
				return fail("service store", "cannot write to the store %s: %s", in.Prefix.Raw, explain(err, root, userName()))
			}
		}
	}
	res, err := probeStoreErr(ctx, in.Store, in.Prefix.Raw, in.ProbeKey)
	res.Name = "service store"
	if err != nil && root != "" && pathErr(err) != nil {
		res.Detail = fmt.Sprintf("cannot write to the store %s: %s", in.Prefix.Raw, explain(err, root, userName()))
	}
	return res
}

// servicePGData proves the agent can read the data directory (base
// backups) and read and write pg_wal (archiving and restoring WAL through
// the fast path).
func servicePGData(pgdata, who string) []Result {
	if pgdata == "" {
		return []Result{skip("service pgdata", "the agent has no data directory")}
	}
	var out []Result
	if _, err := os.ReadDir(pgdata); err != nil {
		out = append(out, fail("service pgdata", "cannot read PGDATA: %s", explain(err, pgdata, who)))
	} else if f, err := os.Open(filepath.Join(pgdata, "global", "pg_control")); err != nil {
		out = append(out, fail("service pgdata", "cannot read PGDATA: %s", explain(err, pgdata, who)))
	} else {
		f.Close()
		out = append(out, pass("service pgdata", "the agent reads %s", pgdata))
	}
	walDir := filepath.Join(pgdata, "pg_wal")
	if _, err := os.ReadDir(walDir); err != nil {
		out = append(out, fail("service pg_wal", "cannot read pg_wal: %s", explain(err, walDir, who)))
	} else {
		out = append(out, writableDir("service pg_wal", walDir, "pg_wal", who))
	}
	return out
}

// writableDir checks that the agent can create files in dir, or, when dir
// does not exist yet, in the directory it would be created in.
func writableDir(name, dir, what, who string) Result {
	at := dir
	for {
		_, err := os.Stat(at)
		if err == nil || !errors.Is(err, os.ErrNotExist) || at == "/" {
			break
		}
		at = filepath.Dir(at)
	}
	if err := dirAccess(at); err != nil {
		if at != dir {
			// A ReadWritePaths entry for a missing directory does nothing.
			return fail(name, "%s %s does not exist and the service cannot create it (%s): create it for the service's user %s",
				what, dir, explain(err, dir, who), who)
		}
		return fail(name, "cannot write %s %s: %s", what, dir, explain(err, dir, who))
	}
	if at != dir {
		return pass(name, "the agent can create %s %s (in %s)", what, dir, at)
	}
	return pass(name, "the agent writes %s %s", what, dir)
}

// dirAccess asks the kernel whether this process may create entries in
// dir; it answers EROFS for a read-only mount, sandbox ones included.
func dirAccess(dir string) error {
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return &os.PathError{Op: "access", Path: dir, Err: err}
	}
	return nil
}

func pathErr(err error) *os.PathError {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// explain turns an access error into what blocks it and what to change:
// the path, then the sandbox setting or permission at fault. want is the
// path to make writable (a store root rather than its subdirectory).
func explain(err error, want, who string) string {
	path := want
	if pe := pathErr(err); pe != nil {
		path = pe.Path
	}
	switch {
	case errors.Is(err, syscall.EROFS):
		if path != want {
			return fmt.Sprintf("%s is read-only inside the service's sandbox (ProtectSystem=strict): add %s to ReadWritePaths", path, want)
		}
		return fmt.Sprintf("%s is read-only inside the service's sandbox (ProtectSystem=strict): add it to ReadWritePaths", path)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Sprintf("%s: permission denied to the service's user %s: give it to that user (owner or group) or loosen its mode", path, who)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("%s does not exist inside the service's sandbox: create it (or it is hidden by ProtectHome=, PrivateTmp= or InaccessiblePaths=)", path)
	}
	return err.Error()
}

// WriteJSON writes the report as the agent's answer.
func (r *ServiceReport) WriteJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(r)
}
