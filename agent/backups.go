// Package agent is the long-running side of walden: it takes the base
// backup on its schedule, applies retention, reports its state as
// Prometheus metrics, a health check and a status document, and serves
// the WAL fast path.
package agent

import (
	"context"
	"errors"
	"time"
)

// Backup describes one complete base backup.
type Backup struct {
	Name   string    `json:"name"`
	Start  time.Time `json:"start_time"`
	Finish time.Time `json:"finish_time"`
	Size   int64     `json:"size_bytes"`   // bytes read from the data directory
	Stored int64     `json:"stored_bytes"` // bytes written to the store
}

// Duration is how long the backup took.
func (b *Backup) Duration() time.Duration { return b.Finish.Sub(b.Start) }

// Progress is a running backup's counters.
type Progress struct {
	BytesRead      int64 `json:"bytes_read"`
	PartitionsDone int   `json:"partitions_done"`
}

// Backuper is what the agent needs from the base backup machinery. The
// command wires the real one; tests use fakes.
type Backuper interface {
	// Lock takes the data directory's backup lock, shared with a manual
	// backup-push; an error wrapping ErrBusy means someone else holds it.
	Lock() (unlock func(), err error)
	// Backup takes one base backup, reporting progress as it goes. A
	// cancelled ctx must leave no backup behind.
	Backup(ctx context.Context, progress func(Progress)) (Backup, error)
	// Retain applies the retention policy and says how many backups it
	// deleted.
	Retain(ctx context.Context) (deleted int, err error)
	// Latest is the newest complete backup in the store, nil if none.
	Latest(ctx context.Context) (*Backup, error)
}

// ErrBusy means another base backup of the same data directory is running.
var ErrBusy = errors.New("another base backup of this data directory is running")
