package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// Scratch directories live directly under os.TempDir(): t.TempDir()
	// nests under root-only 0700 directories that postgres cannot traverse,
	// and its long names would overflow the 107-byte unix socket path limit.
	scratchPrefix = "walden-pgtest-"
	ownerFile     = "pgtest-owner"
	firstPort     = 25432
	portRange     = 1000
)

// makeScratch creates a fresh 0755 root-owned directory and records this
// process as its owner so a later run can remove it if this one is killed
// before its cleanups run (e.g. a test timeout panic).
func makeScratch(kind, binDir string) (string, error) {
	dir, err := os.MkdirTemp(os.TempDir(), scratchPrefix+kind+"-")
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	// MkdirTemp makes it 0700; postgres must be able to traverse it.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("pgtest: %w", err)
	}
	owner := fmt.Sprintf("%d\n%s\n", os.Getpid(), binDir)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return dir, nil
}

var sweepOnce sync.Once

// sweepStale removes scratch directories of test processes that died without
// cleaning up, stopping any server still running in them, so that servers
// do not pile up on a machine that runs the suite again and again.
func sweepStale() {
	sweepOnce.Do(func() {
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), scratchPrefix+"*"))
		for _, dir := range dirs {
			b, err := os.ReadFile(filepath.Join(dir, ownerFile))
			if err != nil {
				continue // not ours, or still being created
			}
			lines := strings.SplitN(string(b), "\n", 3)
			pid, err := strconv.Atoi(lines[0])
			if err != nil || pid == os.Getpid() || processAlive(pid) {
				continue
			}
			if len(lines) > 1 && lines[1] != "" {
				data := filepath.Join(dir, "data")
				if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
					stopImmediate(lines[1], data)
				}
			}
			os.RemoveAll(dir)
		}
	})
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// stopImmediate is best effort: used in cleanups where there is nothing
// better to do with a failure than to go on removing files.
func stopImmediate(binDir, dataDir string) {
	a, err := account()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := newCommand(ctx, a, nil, "", filepath.Join(binDir, "pg_ctl"),
		"-D", dataDir, "-w", "-t", "50", "-m", "immediate", "stop")
	_ = cmd.Run()
}

// allocPort reserves a port number for a cluster. Each cluster has its own
// socket directory, so numbers only need to differ between the clusters
// alive at once (they also key PostgreSQL's SysV shared memory, and PGPORT
// in logs is easier to follow when unique). An flock on a per-port file in a
// shared directory coordinates goroutines and concurrently running test
// binaries, and is released by the kernel if the process dies.
func allocPort() (int, *os.File, error) {
	lockDir := filepath.Join(os.TempDir(), scratchPrefix+"ports")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return 0, nil, fmt.Errorf("pgtest: %w", err)
	}
	for port := firstPort; port < firstPort+portRange; port++ {
		// Stay clear of servers listening in the usual socket directories.
		if inUseElsewhere(port) {
			continue
		}
		f, err := os.OpenFile(filepath.Join(lockDir, strconv.Itoa(port)+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return 0, nil, fmt.Errorf("pgtest: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue
			}
			return 0, nil, fmt.Errorf("pgtest: lock port %d: %w", port, err)
		}
		return port, f, nil
	}
	return 0, nil, fmt.Errorf("pgtest: no free port in %d..%d", firstPort, firstPort+portRange-1)
}

func inUseElsewhere(port int) bool {
	for _, dir := range []string{"/var/run/postgresql", "/tmp"} {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d.lock", port))); err == nil {
			return true
		}
	}
	return false
}
