package basebackup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockDir is where backup locks live: $WALDEN_LOCK_DIR, else /run/walden
// when it exists and is writable (the service's runtime directory), else
// the temporary directory. Every walden process on a host computes the same
// place, so the agent and backup-push exclude each other.
func LockDir() string {
	if d := os.Getenv("WALDEN_LOCK_DIR"); d != "" {
		return d
	}
	if syscall.Access("/run/walden", 0x2|0x1) == nil { // W_OK|X_OK
		return "/run/walden"
	}
	return os.TempDir()
}

// ErrLocked matches (errors.Is) Lock's error when another backup holds the lock.
var ErrLocked = errors.New("another base backup is running")

// LockedError says who holds the lock.
type LockedError struct {
	PGData string
	PID    string
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("another base backup of %s is running (pid %s)", e.PGData, e.PID)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock takes the one-backup-per-data-directory lock for pgdata and returns
// the function that releases it. The lock is an flock on a file named after
// the data directory's resolved path, so the kernel drops it when the
// holder dies.
func Lock(pgdata string) (unlock func(), err error) {
	abs, err := filepath.Abs(pgdata)
	if err != nil {
		return nil, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	sum := sha256.Sum256([]byte(abs))
	dir := LockDir()
	path := filepath.Join(dir, "walden-backup-"+hex.EncodeToString(sum[:8])+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		if f, err = os.Open(path); err != nil {
			return nil, fmt.Errorf("backup lock %s: %w", path, err)
		}
	} else {
		// Any user's backup must be able to take the lock later.
		_ = f.Chmod(0o666)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := "unknown"
			if b, rerr := os.ReadFile(path); rerr == nil && strings.TrimSpace(string(b)) != "" {
				pid = strings.TrimSpace(string(b))
			}
			return nil, &LockedError{PGData: abs, PID: pid}
		}
		return nil, fmt.Errorf("backup lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
