package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/walelog"
)

// Spawner starts a detached wal-prefetch for one segment into base.
type Spawner func(base, seg string) error

// Fetch restores the WAL file name (restore_command's %f) to dest (%p).
// With prefetch > 0 it first starts background downloads of the next
// segments and promotes an already prefetched copy of this one. It returns
// ErrNotFound when the store holds no such file; nothing is left at dest
// unless the whole file was written.
func (a *Archive) Fetch(ctx context.Context, name, dest string, prefetch int, spawn Spawner) error {
	var future []string
	var pf *prefetchDirs
	if prefetch > 0 {
		future = Future(name, prefetch)
		pf = a.prefetchDirs(dest)
		if pf != nil && spawn != nil {
			for _, f := range future {
				if pf.claim(f) {
					if err := spawn(pf.base, f); err != nil {
						os.Remove(pf.runningDir(f))
					}
				}
			}
		}
		if pf != nil {
			defer pf.clearExcept(name, future)
			if a.promote(pf, name, dest) {
				return nil
			}
		}
	}
	key, found, err := a.locate(ctx, name)
	if err != nil {
		return fmt.Errorf("wal-fetch %s: %w", name, err)
	}
	if !found {
		key = Dir + name + a.Format.Ext()
	}
	url := a.Prefix.URL(key)
	a.Log.Info(walelog.Backup, "begin wal restore", "", "", a.fields("wal-fetch", url, name, walelog.F("state", "begin"))...)
	if !found {
		a.logNotFound(url)
		a.Log.Info(walelog.Backup, "complete wal restore", "", "", a.fields("wal-fetch", url, name, walelog.F("state", "complete"))...)
		return ErrNotFound
	}
	if err := a.download(ctx, key, dest); err != nil {
		if errors.Is(err, ErrNotFound) {
			a.logNotFound(url)
			a.Log.Info(walelog.Backup, "complete wal restore", "", "", a.fields("wal-fetch", url, name, walelog.F("state", "complete"))...)
		}
		return err
	}
	a.Log.Info(a.backendLogger(), "completed download and decompression",
		fmt.Sprintf("Downloaded and decompressed %q to %q", url, dest), "")
	a.Log.Info(walelog.Backup, "complete wal restore", "", "", a.fields("wal-fetch", url, name, walelog.F("state", "complete"))...)
	return nil
}

func (a *Archive) logNotFound(url string) {
	lvl := walelog.Warning
	if a.Prefix.Scheme == "s3" {
		lvl = walelog.Info
	}
	a.Log.Log(walelog.Record{Logger: a.backendLogger(), Level: lvl,
		Msg:    "could no longer locate object while performing wal restore",
		Detail: fmt.Sprintf("The absolute URI that could not be located is %s.", url),
		Hint:   "This can be normal when Postgres is trying to detect what timelines are available during restoration."})
}

// download writes the decoded object to a temporary file beside dest and
// renames it into place, so a failure leaves nothing at dest.
func (a *Archive) download(ctx context.Context, key, dest string) error {
	rc, err := a.Store.Get(ctx, key)
	if err != nil {
		if isNotFound(err) {
			return ErrNotFound
		}
		return fmt.Errorf("wal-fetch: download %s: %w", a.Prefix.URL(key), err)
	}
	defer rc.Close()
	dec, err := blob.NewReader(key, rc, a.Crypt)
	if err != nil {
		return fmt.Errorf("wal-fetch: decode %s: %w", a.Prefix.URL(key), err)
	}
	return writeAtomic(dest, dec, func(err error) error {
		return fmt.Errorf("wal-fetch: %s: %w", a.Prefix.URL(key), err)
	})
}

// writeAtomic copies r to a temporary name in dest's directory, closes r
// (whose Close verifies integrity), then renames.
func writeAtomic(dest string, r io.ReadCloser, wrap func(error) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".walden-fetch-*")
	if err != nil {
		return fmt.Errorf("wal-fetch: cannot write to %s: %w", filepath.Dir(dest), unwrapPath(err))
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	_, err = io.Copy(tmp, r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return wrap(err)
	}
	if err := tmp.Close(); err != nil {
		return wrap(err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("wal-fetch: cannot write %s: %w", dest, unwrapPath(err))
	}
	ok = true
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// promote moves a prefetched copy of name onto dest, waiting while a
// running prefetch of it is still growing. WAL-E polled every 0.5 s; a
// finer poll promotes a download the moment it lands, and the same 0.5 s
// without growth still means the helper is stuck and the caller should
// download the segment itself.
func (a *Archive) promote(pf *prefetchDirs, name, dest string) bool {
	const poll, stuck = 10 * time.Millisecond, 500 * time.Millisecond
	last, lastGrowth := int64(-1), time.Now()
	for {
		if err := os.Rename(filepath.Join(pf.dir, name), dest); err == nil {
			url := a.Prefix.URL(Dir + name + a.Format.Ext())
			a.Log.Info(walelog.Backup, "promoted prefetched wal segment", "", "", a.fields("wal-fetch", url, name)...)
			return true
		}
		size := pf.runningSize(name)
		if size < 0 {
			return false // no helper at work on it
		}
		if size > last {
			last, lastGrowth = size, time.Now()
		} else if time.Since(lastGrowth) >= stuck {
			return false
		}
		time.Sleep(poll)
	}
}

// prefetchDirs is WAL-E's on-disk prefetch protocol under <pg_wal>/.wal-e/prefetch/.
type prefetchDirs struct {
	base    string // the real pg_wal directory
	dir     string // base/.wal-e/prefetch
	running string // dir/running
}

func (a *Archive) prefetchDirs(dest string) *prefetchDirs {
	base, err := filepath.EvalSymlinks(filepath.Dir(dest))
	if err != nil {
		base = filepath.Dir(dest)
	}
	base, _ = filepath.Abs(base)
	pf := newPrefetchDirs(base)
	if err := pf.create(); err != nil {
		a.Log.Warn(walelog.Prefetch, "could not create prefetch directory",
			fmt.Sprintf("Prefetch directory creation target: %s, %v", pf.running, unwrapPath(err)), "")
		return nil
	}
	return pf
}

func newPrefetchDirs(base string) *prefetchDirs {
	d := filepath.Join(base, ".wal-e", "prefetch")
	return &prefetchDirs{base: base, dir: d, running: filepath.Join(d, "running")}
}

func (p *prefetchDirs) create() error {
	if err := os.MkdirAll(filepath.Join(p.base, ".wal-e"), 0o777); err != nil {
		return err
	}
	for _, d := range []string{p.dir, p.running} {
		if err := os.Mkdir(d, 0o700); err != nil && !os.IsExist(err) {
			return err
		}
	}
	return nil
}

func (p *prefetchDirs) runningDir(seg string) string { return filepath.Join(p.running, seg) }

// claim marks seg as being prefetched; false when it already is, or is done.
// mkdir is atomic, so two wal-fetch calls never start the same download.
func (p *prefetchDirs) claim(seg string) bool {
	if _, err := os.Stat(filepath.Join(p.dir, seg)); err == nil {
		return false
	}
	return os.Mkdir(p.runningDir(seg), 0o700) == nil
}

func (p *prefetchDirs) runningSize(seg string) int64 {
	ents, err := os.ReadDir(p.runningDir(seg))
	if err != nil {
		return -1
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

var segPrefixRe = regexp.MustCompile(`^[0-9A-F]{24}`)

// clearExcept removes prefetched and in-flight segments that are not in
// future. Requests for non-segment files (timeline history) leave the cache
// alone, unlike WAL-E, which wiped it on every .history probe.
func (p *prefetchDirs) clearExcept(name string, future []string) {
	if Classify(name) != KindSegment {
		return
	}
	for _, d := range []string{p.running, p.dir} {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			n := e.Name()
			if !segPrefixRe.MatchString(n) || slices.Contains(future, n) {
				continue
			}
			os.RemoveAll(filepath.Join(d, n))
		}
	}
}

// Prefetch is WAL-E's wal-prefetch: download seg into base/.wal-e/prefetch/
// through a temporary file under running/<seg>/, then link it into place.
func (a *Archive) Prefetch(ctx context.Context, base, seg string) error {
	pf := newPrefetchDirs(base)
	if err := pf.create(); err != nil {
		return err
	}
	rd := pf.runningDir(seg)
	os.Mkdir(rd, 0o700)
	defer os.RemoveAll(rd)
	key, found, err := a.locate(ctx, seg)
	if err != nil {
		return err
	}
	if !found {
		return ErrNotFound
	}
	url := a.Prefix.URL(key)
	a.Log.Info(walelog.Backup, "begin wal restore", "", "", a.fields("wal-prefetch", url, seg, walelog.F("state", "begin"))...)
	tmp := filepath.Join(rd, "tmp-download")
	if err := a.download(ctx, key, tmp); err != nil {
		return err
	}
	if err := os.Link(tmp, filepath.Join(pf.dir, seg)); err != nil && !os.IsExist(err) {
		return err
	}
	a.Log.Info(walelog.Backup, "complete wal restore", "", "", a.fields("wal-prefetch", url, seg, walelog.F("state", "complete"))...)
	return nil
}
