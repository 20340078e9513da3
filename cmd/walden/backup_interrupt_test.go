package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/pgtest"
)

// bbLockedBuffer collects a running process's output.
type bbLockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *bbLockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *bbLockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestInterruptedBackupLeavesNothingAndEndsBackupMode stops a slow
// backup-push with SIGTERM part-way: it must exit non-zero, write no
// sentinel (so backup-list and LATEST still see only the earlier backup)
// and leave the server out of backup mode. While it runs, a second
// backup-push of the same data directory is refused.
func TestInterruptedBackupLeavesNothingAndEndsBackupMode(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, envdir, store := bbArchivingCluster(t, bin, 3, nil)
	first := bbBackupNameRe.FindStringSubmatch(bbMust(t, bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir), "first backup-push").stderr)
	if first == nil {
		t.Fatal("no name for the first backup")
	}
	c.Pgbench(t, "-n", "-c", "1", "-t", "100") // the next backup starts elsewhere

	var out bbLockedBuffer
	slow := pgtest.Command(t, c.Env(), "", bin, "--envdir", envdir, "backup-push", "--cluster-read-rate-limit", "1048576", c.Dir)
	slow.Stderr = &out
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "begin uploading a base backup volume") {
		if time.Now().After(deadline) {
			slow.Process.Kill()
			t.Fatalf("the slow backup never started uploading:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if n := c.Psql(t, "select count(*) from pg_stat_activity where application_name = 'walden backup-push'"); n != "1" {
		t.Errorf("%s backup sessions while the backup runs, want 1", n)
	}
	second := bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir)
	if second.code == 0 || !strings.Contains(second.stderr, "another base backup of "+c.Dir+" is running (pid ") {
		t.Errorf("a second backup of the same directory: exit %d\n%s", second.code, second.stderr)
	}

	slow.Process.Signal(syscall.SIGTERM)
	err := slow.Wait()
	if err == nil {
		t.Fatalf("interrupted backup-push exited 0:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "interrupted") {
		t.Errorf("no clear error:\n%s", bbTail(out.String(), 2000))
	}

	sentinels, _ := filepath.Glob(filepath.Join(store, "basebackups_005", "*_backup_stop_sentinel.json"))
	if len(sentinels) != 1 || !strings.Contains(sentinels[0], first[1]) {
		t.Errorf("sentinels after the interruption: %v", sentinels)
	}
	list := bbMust(t, bbWalden(t, bin, envdir, nil, "backup-list"), "backup-list")
	if strings.Count(list.stdout, "\r\n") != 2 || !strings.Contains(list.stdout, first[1]) {
		t.Errorf("backup-list:\n%s", list.stdout)
	}
	latest := bbMust(t, bbWalden(t, bin, envdir, nil, "backup-list", "LATEST"), "backup-list LATEST")
	if !strings.Contains(latest.stdout, first[1]) {
		t.Errorf("LATEST is not the completed backup:\n%s", latest.stdout)
	}

	// The server is out of backup mode: the session is gone and a new
	// backup can start and stop.
	deadline = time.Now().Add(10 * time.Second)
	for c.Psql(t, "select count(*) from pg_stat_activity where application_name = 'walden backup-push' or query like '%pg_backup%' and pid <> pg_backend_pid()") != "0" {
		if time.Now().After(deadline) {
			t.Fatal("the interrupted backup's session is still there")
		}
		time.Sleep(100 * time.Millisecond)
	}
	conn := c.Conn(t)
	ctx := t.Context()
	if _, err := conn.Exec(ctx, "select pg_backup_start('after-interrupt', true)"); err != nil {
		t.Fatalf("a new backup cannot start: %v", err)
	}
	if _, err := conn.Exec(ctx, "select pg_backup_stop(false)"); err != nil {
		t.Fatalf("a new backup cannot stop: %v", err)
	}
	// And walden can take the next one.
	bbMust(t, bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir), "backup-push after the interruption")
	if _, err := os.Stat(store); err != nil {
		t.Fatal(err)
	}
}
