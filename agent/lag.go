package agent

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ArchiveLag is the age of the oldest WAL file PostgreSQL has marked ready
// for archiving (a .ready file in pg_wal/archive_status), 0 when none
// waits: how far archiving is behind.
func ArchiveLag(pgdata string, now time.Time) (time.Duration, error) {
	lag, _, err := archiveBacklog(pgdata, now)
	return lag, err
}

// ArchiveReady is how many WAL files wait for archiving (.ready files).
func ArchiveReady(pgdata string) (int, error) {
	_, n, err := archiveBacklog(pgdata, time.Now())
	return n, err
}

func archiveBacklog(pgdata string, now time.Time) (time.Duration, int, error) {
	dir := filepath.Join(pgdata, "pg_wal", "archive_status")
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		// PostgreSQL before 10 called it pg_xlog.
		if e2, err2 := os.ReadDir(filepath.Join(pgdata, "pg_xlog", "archive_status")); err2 == nil {
			ents, err = e2, nil
		}
	}
	if err != nil {
		return 0, 0, err
	}
	var oldest time.Time
	n := 0
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".ready") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // archived and renamed while we looked
		}
		n++
		if oldest.IsZero() || fi.ModTime().Before(oldest) {
			oldest = fi.ModTime()
		}
	}
	if oldest.IsZero() || now.Before(oldest) {
		return 0, n, nil
	}
	return now.Sub(oldest), n, nil
}
