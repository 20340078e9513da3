package basebackup

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// lockSandbox points the lock directory at a private temporary directory.
func lockSandbox(t *testing.T) string {
	t.Helper()
	t.Setenv("WALDEN_LOCK_DIR", "")
	oldRun, oldTmp := runLockDir, tmpLockDir
	tmp := t.TempDir()
	runLockDir, tmpLockDir = filepath.Join(tmp, "no-run"), tmp
	t.Cleanup(func() { runLockDir, tmpLockDir = oldRun, oldTmp })
	return tmp
}

// TestLockFileIsPrivateAndNeverFollowsASymlink: the lock lives in a 0700
// directory of the data directory's owner, is 0600, and a symlink planted
// where it goes makes Lock fail without touching the link's target.
func TestLockFileIsPrivateAndNeverFollowsASymlink(t *testing.T) {
	tmp := lockSandbox(t)
	pgdata := t.TempDir()
	unlock, err := Lock(pgdata)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "walden-"+strconv.Itoa(os.Geteuid()))
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("lock directory %s: %v %v", dir, fi.Mode(), err)
	}
	locks, _ := filepath.Glob(filepath.Join(dir, "walden-backup-*.lock"))
	if len(locks) != 1 {
		t.Fatalf("locks %v", locks)
	}
	if fi, _ := os.Stat(locks[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode %s, want 0600", fi.Mode().Perm())
	}
	if h, running := RunningBackup(pgdata); !running || time.Since(h.Since) > time.Minute || h.PID != os.Getpid() {
		t.Errorf("RunningBackup while locked: %+v %v", h, running)
	}
	unlock()
	if _, running := RunningBackup(pgdata); running {
		t.Error("RunningBackup after unlock")
	}

	os.Remove(locks[0])
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	if err := os.Symlink(victim, locks[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(pgdata); err == nil {
		t.Fatal("Lock followed a symlink")
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o644 {
		t.Fatalf("the symlink's target was chmodded: %s", fi.Mode())
	}
}

// TestLockRefusesADirectoryOthersCanWrite: a walden-<uid> directory made
// by someone else in the shared temporary directory, or a world-writable
// WALDEN_LOCK_DIR, is refused.
func TestLockRefusesADirectoryOthersCanWrite(t *testing.T) {
	tmp := lockSandbox(t)
	dir := filepath.Join(tmp, "walden-"+strconv.Itoa(os.Geteuid()))
	os.Mkdir(dir, 0o777)
	os.Chmod(dir, 0o777)
	if _, err := Lock(t.TempDir()); err == nil {
		t.Fatal("lock taken in a world-writable directory")
	}
	open := t.TempDir()
	os.Chmod(open, 0o777)
	t.Setenv("WALDEN_LOCK_DIR", open)
	if _, err := Lock(t.TempDir()); err == nil {
		t.Fatal("lock taken in a world-writable WALDEN_LOCK_DIR")
	}
}
