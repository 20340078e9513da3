package basebackup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Where locks go when WALDEN_LOCK_DIR is not set; variables for tests.
var (
	runLockDir = "/run/walden"
	tmpLockDir = os.TempDir()
)

// LockDir is where the backup lock of a data directory owned by uid
// lives: $WALDEN_LOCK_DIR, else /run/walden when it exists (the service's
// runtime directory), else walden-<uid> in the temporary directory,
// created 0700 for that user. Every walden process on a host, root or the
// service user, computes the same place, so the agent and backup-push
// exclude each other; none of them is writable by other users.
func LockDir(uid int) (string, error) {
	if d := os.Getenv("WALDEN_LOCK_DIR"); d != "" {
		return d, checkLockDir(d)
	}
	if fi, err := os.Stat(runLockDir); err == nil && fi.IsDir() {
		return runLockDir, checkLockDir(runLockDir)
	}
	d := filepath.Join(tmpLockDir, "walden-"+strconv.Itoa(uid))
	if err := os.Mkdir(d, 0o700); err == nil {
		if os.Geteuid() != uid {
			if err := os.Chown(d, uid, -1); err != nil {
				return "", fmt.Errorf("backup lock directory %s: %w", d, err)
			}
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("backup lock directory %s: %w", d, err)
	}
	// Someone else may have made it first in the shared /tmp: it must be
	// a real directory of the data directory's owner, closed to others.
	fi, err := os.Lstat(d)
	if err != nil {
		return "", fmt.Errorf("backup lock directory %s: %w", d, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != uid || fi.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("backup lock directory %s is not a directory of uid %d closed to other users; remove it or set WALDEN_LOCK_DIR", d, uid)
	}
	return d, nil
}

// checkLockDir refuses a lock directory others may write to: they could
// plant or remove locks.
func checkLockDir(d string) error {
	fi, err := os.Stat(d)
	if err != nil {
		return fmt.Errorf("backup lock directory %s: %w", d, err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("backup lock directory %s is not a directory closed to other users (mode %s)", d, fi.Mode().Perm())
	}
	return nil
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

// LockHolder is what a lock file says while held: the holder's pid and
// when its backup started.
type LockHolder struct {
	PID   int
	Since time.Time
}

// Lock takes the one-backup-per-data-directory lock for pgdata and returns
// the function that releases it. The lock is an flock on a file named after
// the data directory's resolved path, so the kernel drops it when the
// holder dies. The file is 0600, owned by the data directory's owner, and
// never opened through a symlink.
func Lock(pgdata string) (unlock func(), err error) {
	abs, path, uid, err := lockPath(pgdata)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup lock %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("backup lock %s is not a regular file", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid && os.Geteuid() == 0 {
		// Root created it: the service user must be able to take it later.
		_ = f.Chown(uid, -1)
	}
	_ = f.Chmod(0o600)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := "unknown"
			if h, ok := readHolder(f); ok {
				pid = strconv.Itoa(h.PID)
			}
			return nil, &LockedError{PGData: abs, PID: pid}
		}
		return nil, fmt.Errorf("backup lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(fmt.Sprintf("%d %d\n", os.Getpid(), time.Now().Unix())), 0)
	}
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// lockPath is the resolved data directory, its lock file and its owner.
func lockPath(pgdata string) (abs, path string, uid int, err error) {
	abs, err = filepath.Abs(pgdata)
	if err != nil {
		return "", "", 0, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	uid = os.Geteuid()
	if fi, err := os.Stat(abs); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid = int(st.Uid)
		}
	}
	dir, err := LockDir(uid)
	if err != nil {
		return "", "", 0, err
	}
	sum := sha256.Sum256([]byte(abs))
	return abs, filepath.Join(dir, "walden-backup-"+hex.EncodeToString(sum[:8])+".lock"), uid, nil
}

// readHolder reads "pid unix-start" (older walden wrote only the pid).
func readHolder(f *os.File) (LockHolder, bool) {
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0)
	fields := strings.Fields(string(b[:n]))
	if len(fields) == 0 {
		return LockHolder{}, false
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil {
		return LockHolder{}, false
	}
	h := LockHolder{PID: pid}
	if len(fields) > 1 {
		if s, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
			h.Since = time.Unix(s, 0)
		}
	}
	return h, true
}

// RunningBackup reports the backup of pgdata running now, if any: the
// lock is held. A probe that cannot tell says running, since/zero, so
// callers stay on the safe side.
func RunningBackup(pgdata string) (LockHolder, bool) {
	_, path, _, err := lockPath(pgdata)
	if err != nil {
		return LockHolder{}, true
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return LockHolder{}, false
	}
	if err != nil {
		return LockHolder{}, true
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return LockHolder{}, false
	}
	h, _ := readHolder(f)
	return h, true
}

// LockDirFor is the directory holding the backup lock of pgdata.
func LockDirFor(pgdata string) (string, error) {
	_, p, _, err := lockPath(pgdata)
	if err != nil {
		return "", err
	}
	return filepath.Dir(p), nil
}
