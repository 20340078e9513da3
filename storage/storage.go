// Package storage defines the small interface every backend implements and the
// WAL-E prefix grammar that maps logical keys onto backends.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) by Get, Head and Open when the object does not exist.
var ErrNotFound = errors.New("object not found")

// ErrExists is returned (wrapped) by a Put with IfAbsent when the key
// already holds an object: the write did not happen.
var ErrExists = errors.New("object already exists")

// IsExists reports whether err means a create-if-absent Put found the key taken.
func IsExists(err error) bool { return errors.Is(err, ErrExists) }

// Object describes one stored object. Key is relative to the store's prefix
// (for example "wal_005/000000010000000000000001.lzo").
type Object struct {
	Key      string
	Size     int64
	Modified time.Time
}

// PutOptions carries per-object metadata.
type PutOptions struct {
	ContentType string // "" means the backend default (application/octet-stream)
	// IfAbsent makes the Put atomic create-if-absent: when the key exists
	// the store is left unchanged and Put returns an error wrapping
	// ErrExists. Two racing writers of one key: exactly one wins.
	IfAbsent bool
}

// Store is what every backend implements. Keys are always relative to the
// prefix the store was opened with and use "/" as separator. A Put makes the
// object visible whole or not at all.
type Store interface {
	// Put uploads r under key. size is the length of r when known, -1 otherwise.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error
	// Get opens the object for reading; a missing object gives an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Head returns the object's metadata; a missing object gives ErrNotFound.
	Head(ctx context.Context, key string) (Object, error)
	// List returns every object whose key starts with prefix, recursively, sorted by key.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes the object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
}

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
