package basebackup

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWaitArchivedFollowsPostgresStatusFiles(t *testing.T) {
	wal := t.TempDir()
	os.Mkdir(filepath.Join(wal, "archive_status"), 0o700)
	seg, hist := "000000010000000000000003", "000000010000000000000002.00000028.backup"
	os.WriteFile(filepath.Join(wal, seg), nil, 0o600)
	os.WriteFile(filepath.Join(wal, "archive_status", seg+".ready"), nil, 0o600)
	os.WriteFile(filepath.Join(wal, hist), nil, 0o600)
	os.WriteFile(filepath.Join(wal, "archive_status", hist+".done"), nil, 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := waitArchived(ctx, wal, []string{seg, hist}, nil); err == nil {
		t.Fatal("returned while a segment was still .ready")
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.Rename(filepath.Join(wal, "archive_status", seg+".ready"), filepath.Join(wal, "archive_status", seg+".done"))
	}()
	start := time.Now()
	if err := waitArchived(context.Background(), wal, []string{seg, hist}, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 600*time.Millisecond {
		t.Fatalf("took %v to notice", d)
	}
	// A recycled segment with no status file was archived long ago.
	if err := waitArchived(context.Background(), wal, []string{"000000010000000000000001"}, nil); err != nil {
		t.Fatal(err)
	}
}
