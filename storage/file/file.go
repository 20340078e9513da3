// Package file stores objects as files under a local directory, the backend
// of WALE_FILE_PREFIX. Writes go to a temporary name and are renamed, so an
// object is visible whole or not at all.
//
// The root directory belongs to the operator: it must exist, and walden
// only creates its own directories below it. A missing root (deleted, or a
// mount that is not there) is an error naming it, never an empty store and
// never silently recreated: a restore must not mistake an unmounted archive
// for the end of WAL. Objects are created 0640 and directories 0750, both
// further narrowed by the umask.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/walden-pg/walden/internal/ctxio"
	"github.com/walden-pg/walden/storage"
)

// Store is a directory-backed store.
type Store struct {
	root string
}

const (
	// FileMode and DirMode are the widest modes walden creates; the
	// kernel narrows them by the umask.
	FileMode = 0o640
	DirMode  = 0o750
)

// New returns a store rooted at dir (WAL-E: "/" + path_prefix).
func New(dir string) *Store { return &Store{root: filepath.Clean(dir)} }

func (s *Store) path(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }

// RootError reports a store root that is missing or not a directory.
type RootError struct {
	Root string
	Err  error
}

func (e *RootError) Error() string {
	if errors.Is(e.Err, fs.ErrNotExist) {
		return fmt.Sprintf("file store directory %s does not exist (create it, or mount the file system it is on)", e.Root)
	}
	return fmt.Sprintf("file store directory %s: %v", e.Root, e.Err)
}
func (e *RootError) Unwrap() error { return e.Err }

// checkRoot fails unless the root exists and is a directory.
func (s *Store) checkRoot() error {
	fi, err := os.Stat(s.root)
	if err != nil {
		return &RootError{Root: s.root, Err: err}
	}
	if !fi.IsDir() {
		return &RootError{Root: s.root, Err: errors.New("not a directory")}
	}
	return nil
}

// mkdirs creates dir and its parents below the root, one level at a time,
// so that a root that vanishes meanwhile is an error and is not recreated.
func (s *Store) mkdirs(dir string) error {
	rel, err := filepath.Rel(s.root, dir)
	if err != nil || rel == "." {
		return s.checkRoot()
	}
	d := s.root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		d = filepath.Join(d, part)
		err := os.Mkdir(d, DirMode)
		if err == nil || errors.Is(err, fs.ErrExist) {
			continue
		}
		if rerr := s.checkRoot(); rerr != nil {
			return rerr
		}
		return err
	}
	return nil
}

var tmpSeq atomic.Uint64

// createTemp makes a new hidden file next to dst with FileMode, so the
// umask applies (os.CreateTemp would fix the mode at 0600).
func createTemp(dst string) (*os.File, error) {
	for i := 0; ; i++ {
		name := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp"+
			strconv.FormatInt(time.Now().UnixNano(), 36)+strconv.FormatUint(tmpSeq.Add(1), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, FileMode)
		if errors.Is(err, fs.ErrExist) && i < 100 {
			continue
		}
		return f, err
	}
}

// missing turns a lookup's ENOENT into a RootError when the root itself
// is gone, so that an unmounted store is never read as an empty one.
func (s *Store) missing(err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return s.checkRoot()
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.PutOptions) error {
	dst := s.path(key)
	if err := s.mkdirs(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	f, err := createTemp(dst)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, ctxio.Reader(ctx, r)); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if opts.IfAbsent {
		// link(2) fails with EEXIST instead of replacing: create-if-absent.
		err := os.Link(tmp, dst)
		os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			ok = true
			return fmt.Errorf("put %s: %w", key, storage.ErrExists)
		}
		if err != nil {
			ok = true
			return fmt.Errorf("put %s: %w", key, err)
		}
	} else if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	ok = true
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f, err := os.Open(s.path(key))
	if err != nil {
		if rerr := s.missing(err); rerr != nil {
			return nil, fmt.Errorf("get %s: %w", key, rerr)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("get %s: %w", key, storage.ErrNotFound)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return f, nil
}

func (s *Store) Head(ctx context.Context, key string) (storage.Object, error) {
	fi, err := os.Stat(s.path(key))
	if err != nil {
		if rerr := s.missing(err); rerr != nil {
			return storage.Object{}, fmt.Errorf("head %s: %w", key, rerr)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return storage.Object{}, fmt.Errorf("head %s: %w", key, storage.ErrNotFound)
		}
		return storage.Object{}, fmt.Errorf("head %s: %w", key, err)
	}
	if fi.IsDir() {
		return storage.Object{}, fmt.Errorf("head %s: %w", key, storage.ErrNotFound)
	}
	return storage.Object{Key: key, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// List walks the directory holding prefix; temporary files of unfinished
// writes are not objects and are left out.
func (s *Store) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	dir := prefix
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i]
	} else {
		dir = ""
	}
	start := s.path(dir)
	if err := s.checkRoot(); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	var out []storage.Object
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, storage.Object{Key: key, Size: fi.Size(), Modified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes the file and the directories it leaves empty, up to the root.
func (s *Store) Delete(ctx context.Context, key string) error {
	p := s.path(key)
	if err := os.Remove(p); err != nil {
		if rerr := s.missing(err); rerr != nil {
			return fmt.Errorf("delete %s: %w", key, rerr)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	for d := filepath.Dir(p); d != s.root && strings.HasPrefix(d, s.root); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// Local reports that lookups here cost no network round trip, so callers may
// probe several names instead of listing.
func (s *Store) Local() bool { return true }
