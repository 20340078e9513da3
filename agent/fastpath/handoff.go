package fastpath

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/walden-pg/walden/config"
)

// HandOff asks the agent serving s.SocketPath to run req, which carries
// the command as parsed (Command, Positionals, Options, Flags, Prog,
// GlobalArgs, Terse); the rest of the request is filled in here. The
// command's output is copied to stdout and stderr.
//
// handled is false, and the caller does the work itself, when no socket is
// configured, no agent answers, it refuses (another configuration, a
// relative path from another directory, another user), or the connection
// breaks before the exit status: the work is then redone whole, which
// wal-push and wal-fetch tolerate. When ctx ends while the agent works
// (the caller was told to stop), the agent stops too and its answer, the
// failure logged as the caller's own run would have, comes back as usual;
// err is set only when that answer did not come: the caller stops too,
// as a standalone run would, rather than start over.
func HandOff(ctx context.Context, s *config.Settings, req *Request, stdout, stderr io.Writer) (handled bool, status int, err error) {
	if !prepare(s, req) {
		return false, 0, nil
	}
	return answered(ctx)(Do(ctx, s.SocketPath, req, stdout, stderr))
}

// prepare fills in what every hand-off request carries; false when there
// is no agent to ask.
func prepare(s *config.Settings, req *Request) bool {
	if s == nil || s.SocketPath == "" {
		return false
	}
	if _, err := os.Stat(s.SocketPath); err != nil {
		return false
	}
	cwd, err := os.Getwd()
	if err != nil {
		return false
	}
	req.Fingerprint = Fingerprint(s)
	req.Log = LogShapeOf(s)
	req.Cwd = cwd
	req.Pid = os.Getpid()
	return true
}

// answered turns a request's outcome into HandOff's results: a failure is
// not handled (the caller does the work itself) unless ctx ended.
func answered(ctx context.Context) func(int, error) (bool, int, error) {
	return func(status int, err error) (bool, int, error) {
		if err != nil {
			if ctx.Err() != nil {
				return true, 0, ctx.Err()
			}
			return false, 0, nil
		}
		return true, status, nil
	}
}

// HandOffFetch is HandOff for wal-fetch: the agent sends the file's bytes
// and this process writes dest itself (Fetch), so that the agent never
// needs to write where the caller may and it may not.
func HandOffFetch(ctx context.Context, s *config.Settings, req *Request, dest string, stdout, stderr io.Writer) (handled bool, status int, err error) {
	if !prepare(s, req) {
		return false, 0, nil
	}
	return answered(ctx)(Fetch(ctx, s.SocketPath, req, dest, stdout, stderr))
}

// UseExecutable makes Fingerprint identify the program at path instead of
// the running one. The front program, which only hands requests on, uses
// it for the full program it stands for: that is what the agent runs, and
// what must match for the agent's answer to be the one the full program
// would have given.
func UseExecutable(path string) {
	executableID = func() string {
		fi, err := os.Stat(path)
		if err != nil {
			return "unknown:" + path
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return "unknown:" + path
		}
		return fmt.Sprintf("%d:%d:%d:%d", st.Dev, st.Ino, fi.Size(), fi.ModTime().UnixNano())
	}
}
