package wal

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/gpg"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// Spawner starts a detached wal-prefetch for one segment into base.
type Spawner func(base, seg string) error

// NameError means a requested name is not a WAL file name PostgreSQL uses;
// such names are refused before they reach the store (no "../").
type NameError struct{ Name string }

func (e *NameError) Error() string {
	return fmt.Sprintf("WAL_SEGMENT %q is not a WAL file name (24 upper-case hex digits, optionally .partial; TTTTTTTT.history; or SEGMENT.OFFSET.backup)", e.Name)
}

// ValidName reports whether name may be fetched: a segment, a timeline
// history, a backup history or a partial segment.
func ValidName(name string) error {
	if Classify(name) == KindOther {
		return &NameError{Name: name}
	}
	return nil
}

// PlaintextError means a store configured for encryption held an
// unencrypted object: something other than walden (or a WAL-E without a
// key) wrote it, and it is refused unless plaintext is explicitly allowed.
type PlaintextError struct{ URL string }

func (e *PlaintextError) Error() string {
	return fmt.Sprintf("%s is not encrypted although encryption is configured; refusing it (set WALDEN_ALLOW_PLAINTEXT=true to accept the plaintext objects of an archive encryption was added to later)", e.URL)
}

// SystemIDError means a segment belongs to another cluster than the one
// whose data directory it is restored into.
type SystemIDError struct {
	Name       string
	Got, Want  uint64
	ControlDir string
}

func (e *SystemIDError) Error() string {
	return fmt.Sprintf("%s is WAL of database system %d, but %s belongs to database system %d: refusing WAL of another cluster", e.Name, e.Got, e.ControlDir, e.Want)
}

// Fetch restores the WAL file name (restore_command's %f) to dest (%p).
// With prefetch > 0 it first starts background downloads of the next
// segments and promotes an already prefetched copy of this one. It returns
// ErrNotFound when the store holds no such file (and the archive shows no
// gap there); any other error means the file exists or should exist but
// cannot be restored. Nothing is left at dest unless the whole file was
// written and checked.
func (a *Archive) Fetch(ctx context.Context, name, dest string, prefetch int, spawn Spawner) error {
	if err := ValidName(name); err != nil {
		return err
	}
	sysid, sysidFrom := controlSystemID(dest)
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
			if a.promote(pf, name, dest, sysid, sysidFrom) {
				return nil
			}
		}
	}
	rc, key, found, lists, err := a.find(ctx, name)
	if err != nil {
		return err
	}
	url := a.Prefix.URL(key)
	a.Log.Info(walelog.Backup, "begin wal restore", "", "", a.fields("wal-fetch", url, name, walelog.F("state", "begin"))...)
	if !found {
		if err := a.gapOf(ctx, name, lists); err != nil {
			return err
		}
		a.logNotFound(url)
		a.Log.Info(walelog.Backup, "complete wal restore", "", "", a.fields("wal-fetch", url, name, walelog.F("state", "complete"))...)
		return ErrNotFound
	}
	if err := a.download(ctx, rc, key, name, dest, sysid, sysidFrom, false); err != nil {
		if errors.Is(err, ErrNotFound) {
			// Deleted between the lookup and the download: as absent.
			if err := a.checkGap(ctx, name); err != nil {
				return err
			}
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

// controlSystemID reads the system identifier (the first 8 bytes of
// global/pg_control) of the data directory dest is restored into, when
// dest's directory is a pg_wal inside one.
func controlSystemID(dest string) (uint64, string) {
	abs, err := filepath.Abs(dest)
	if err != nil {
		return 0, ""
	}
	dataDir := filepath.Dir(filepath.Dir(abs))
	f, err := os.Open(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		return 0, ""
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, ""
	}
	return binary.LittleEndian.Uint64(b[:]), dataDir
}

// checked wraps the decoded content of name with the segment checks: page
// header and length as it streams, and at the end the system identifier
// when the destination's cluster is known.
type checked struct {
	*SegmentReader
	name      string
	sysid     uint64
	sysidFrom string
}

func newChecked(name string, r io.Reader, sysid uint64, from string) *checked {
	return &checked{SegmentReader: CheckReader(name, r), name: name, sysid: sysid, sysidFrom: from}
}

// verify is called once the whole content was read without error.
func (c *checked) verify() error {
	h, ok := c.Header()
	if !ok || c.sysidFrom == "" || h.SysID == c.sysid {
		return nil
	}
	return &SystemIDError{Name: c.name, Got: h.SysID, Want: c.sysid, ControlDir: c.sysidFrom}
}

// find looks the WAL file name up in the store. On a remote store it
// first GETs the configured format's object: rc is then set, and one
// round trip was all. When that is absent, key names the copy under
// another format to fetch (found), or the configured one (not found).
//
// A plain segment's lookup lists its log id and the next at once, which
// shows any other copy and is what the gap check needs (lists, for
// gapOf); another WAL file (a timeline history file, which PostgreSQL
// mostly probes for in vain) is listed while its GET is in flight. An
// absent file thus costs two round trips to a distant store, or one; a
// segment a.ExpectAbsent says is missing is listed while its GET is in
// flight too.
func (a *Archive) find(ctx context.Context, name string) (rc io.ReadCloser, key string, found bool, lists *[2][]storage.Object, err error) {
	key = Dir + name + a.Format.Ext()
	if l, ok := a.Store.(local); ok && l.Local() {
		loc, found, err := a.locate(ctx, name)
		if err != nil {
			return nil, "", false, nil, fmt.Errorf("wal-fetch %s: %w", name, err)
		}
		if found {
			key = loc
		}
		return nil, key, found, nil, nil
	}
	seg, serr := ParseSegment(name)
	if serr != nil || Classify(name) != KindSegment {
		return a.getOrLocate(ctx, key, name)
	}
	// The gap check's listings: sent with the GET when the segment is
	// expected absent, else only once the GET found nothing.
	listed := func() ([2][]storage.Object, error) { return a.gapLists(ctx, seg) }
	if a.ExpectAbsent {
		wait, stop := inBackground(ctx, func(ctx context.Context) ([2][]storage.Object, error) { return a.gapLists(ctx, seg) })
		defer stop() // a found segment abandons them
		listed = wait
	}
	rc, err = a.Store.Get(ctx, key)
	switch {
	case err == nil:
		return rc, key, true, nil, nil
	case !isNotFound(err):
		return nil, "", false, nil, fmt.Errorf("wal-fetch: download %s: %w", a.Prefix.URL(key), err)
	}
	l, err := listed()
	if err != nil {
		return nil, "", false, nil, fmt.Errorf("wal-fetch %s: %w", name, err)
	}
	if loc, ok := a.locateIn(l[0], name); ok {
		return nil, loc, true, &l, nil
	}
	return nil, key, false, &l, nil
}

// inBackground starts f at once; wait returns its result, and stop
// abandons it (ends its context).
func inBackground[T any](ctx context.Context, f func(context.Context) (T, error)) (wait func() (T, error), stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f(ctx)
		ch <- result{v, err}
	}()
	return func() (T, error) { r := <-ch; return r.v, r.err }, cancel
}

// gapOf is checkGap, on find's listings when it made them.
func (a *Archive) gapOf(ctx context.Context, name string, lists *[2][]storage.Object) error {
	if lists == nil {
		return a.checkGap(ctx, name)
	}
	seg, err := ParseSegment(name)
	if err != nil {
		return nil
	}
	return a.judgeGap(ctx, name, seg, *lists)
}

// download writes the decoded, checked object to a temporary file beside
// dest and renames it into place, so a failure leaves nothing at dest.
// rc is the object already opened, or nil to open it here.
func (a *Archive) download(ctx context.Context, rc io.ReadCloser, key, name, dest string, sysid uint64, sysidFrom string, durable bool) error {
	url := a.Prefix.URL(key)
	if rc == nil {
		var err error
		rc, err = a.Store.Get(ctx, key)
		if err != nil {
			if isNotFound(err) {
				return ErrNotFound
			}
			return fmt.Errorf("wal-fetch: download %s: %w", url, err)
		}
	}
	defer rc.Close()
	c, finish, err := a.decodeChecked(rc, key, name, sysid, sysidFrom)
	if err != nil {
		return err
	}
	return writeAtomic(dest, c, finish, durable, func(err error) error {
		return fmt.Errorf("wal-fetch: %s: %w", url, err)
	})
}

// decodeChecked wraps a stored object's bytes with its decoding and the
// segment checks; finish closes the decoder (which verifies integrity)
// and checks what only the end can tell.
func (a *Archive) decodeChecked(rc io.Reader, key, name string, sysid uint64, sysidFrom string) (io.Reader, func() error, error) {
	url := a.Prefix.URL(key)
	br := bufio.NewReaderSize(rc, 64<<10)
	if head, _ := br.Peek(8); !gpg.IsEncrypted(head) && a.RequireEncrypted {
		if !a.AllowPlaintext {
			return nil, nil, fmt.Errorf("wal-fetch: %w", &PlaintextError{URL: url})
		}
		a.Log.Warn(walelog.Backup, "accepted a plaintext object from an encrypted archive",
			fmt.Sprintf("%s is not encrypted; WALDEN_ALLOW_PLAINTEXT=true accepts it.", url), "",
			a.fields("wal-fetch", url, name)...)
	}
	dec, err := blob.NewReader(key, br, a.Crypt)
	if err != nil {
		return nil, nil, fmt.Errorf("wal-fetch: decode %s: %w", url, err)
	}
	c := newChecked(name, dec, sysid, sysidFrom)
	return c, func() error {
		if err := dec.Close(); err != nil {
			return err
		}
		return c.verify()
	}, nil
}

// writeAtomic copies r to a temporary name in dest's directory, runs
// finish (which closes the source, whose Close verifies integrity, and
// checks what only the end can tell), then renames. durable also syncs
// the file before and the directory after the rename.
func writeAtomic(dest string, r io.Reader, finish func() error, durable bool, wrap func(error) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".walden-fetch-*")
	if err != nil {
		finish()
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
	if ferr := finish(); err == nil {
		err = ferr
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Path == tmp.Name() {
			return fmt.Errorf("wal-fetch: cannot write to %s: %w", filepath.Dir(dest), unwrapPath(err))
		}
		return wrap(err)
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("wal-fetch: cannot write %s: %w", dest, unwrapPath(err))
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("wal-fetch: cannot write %s: %w", dest, unwrapPath(err))
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("wal-fetch: cannot write %s: %w", dest, unwrapPath(err))
	}
	ok = true
	if durable {
		return syncDir(filepath.Dir(dest))
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
// download the segment itself. The copy is checked like a download before
// it is served; a bad one is discarded.
func (a *Archive) promote(pf *prefetchDirs, name, dest string, sysid uint64, sysidFrom string) bool {
	const poll, stuck = 10 * time.Millisecond, 500 * time.Millisecond
	last, lastGrowth := int64(-1), time.Now()
	// Taken out of the cache first, so that what is checked is what is served.
	hold := filepath.Join(filepath.Dir(dest), ".walden-promote-"+name)
	for {
		if err := os.Rename(filepath.Join(pf.dir, name), hold); err == nil {
			if err := checkFile(hold, name, sysid, sysidFrom); err != nil {
				os.Remove(hold)
				a.Log.Warn(walelog.Prefetch, "discarded an invalid prefetched segment",
					fmt.Sprintf("%s: %v", filepath.Join(pf.dir, name), err), "The segment is downloaded again.")
				return false
			}
			if err := os.Rename(hold, dest); err != nil {
				os.Remove(hold)
				return false
			}
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

// checkFile checks a local copy of the WAL file name.
func checkFile(path, name string, sysid uint64, sysidFrom string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	c := newChecked(name, f, sysid, sysidFrom)
	if _, err := io.Copy(io.Discard, c); err != nil {
		return err
	}
	return c.verify()
}

// prefetchDirs is WAL-E's on-disk prefetch protocol, kept apart per store
// prefix under <pg_wal>/.wal-e/prefetch/<prefix key>/: a segment
// prefetched from one archive is never served for another.
type prefetchDirs struct {
	base    string // the real pg_wal directory
	dir     string // base/.wal-e/prefetch/<prefix key>
	running string // dir/running
}

func (a *Archive) prefetchDirs(dest string) *prefetchDirs {
	base, err := filepath.EvalSymlinks(filepath.Dir(dest))
	if err != nil {
		base = filepath.Dir(dest)
	}
	base, _ = filepath.Abs(base)
	pf := a.newPrefetchDirs(base)
	if err := pf.create(); err != nil {
		a.Log.Warn(walelog.Prefetch, "could not create prefetch directory",
			fmt.Sprintf("Prefetch directory creation target: %s, %v", pf.running, unwrapPath(err)), "")
		return nil
	}
	return pf
}

// prefixKey names an archive's prefetch directory: a short hash of the
// store URL (which may be long and hold characters unfit for a file name).
func (a *Archive) prefixKey() string {
	sum := sha256.Sum256([]byte(a.Prefix.URL("")))
	return "p-" + hex.EncodeToString(sum[:6])
}

func (a *Archive) newPrefetchDirs(base string) *prefetchDirs {
	d := filepath.Join(base, ".wal-e", "prefetch", a.prefixKey())
	return &prefetchDirs{base: base, dir: d, running: filepath.Join(d, "running")}
}

func (p *prefetchDirs) create() error {
	if err := os.MkdirAll(filepath.Join(p.base, ".wal-e"), 0o777); err != nil {
		return err
	}
	for _, d := range []string{filepath.Dir(p.dir), p.dir, p.running} {
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
	// WAL-E's own layout (segments directly under prefetch/) is never
	// served; what it left there is cleared like stale segments.
	legacy := filepath.Dir(p.dir)
	for _, d := range []string{p.running, p.dir, filepath.Join(legacy, "running"), legacy} {
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

// Prefetch is WAL-E's wal-prefetch: download seg into this archive's
// prefetch directory under base through a temporary file under
// running/<seg>/, checked as wal-fetch checks it, synced, then linked into
// place (and the directory synced).
func (a *Archive) Prefetch(ctx context.Context, base, seg string) error {
	if Classify(seg) != KindSegment {
		return &NameError{Name: seg}
	}
	pf := a.newPrefetchDirs(base)
	if err := pf.create(); err != nil {
		return err
	}
	rd := pf.runningDir(seg)
	os.Mkdir(rd, 0o700)
	defer os.RemoveAll(rd)
	rc, key, found, _, err := a.find(ctx, seg)
	if err != nil {
		return err
	}
	if !found {
		return ErrNotFound
	}
	url := a.Prefix.URL(key)
	a.Log.Info(walelog.Backup, "begin wal restore", "", "", a.fields("wal-prefetch", url, seg, walelog.F("state", "begin"))...)
	tmp := filepath.Join(rd, "tmp-download")
	sysid, sysidFrom := controlSystemID(filepath.Join(base, seg))
	if err := a.download(ctx, rc, key, seg, tmp, sysid, sysidFrom, true); err != nil {
		return err
	}
	if err := os.Link(tmp, filepath.Join(pf.dir, seg)); err != nil && !os.IsExist(err) {
		return err
	}
	if err := syncDir(pf.dir); err != nil {
		return err
	}
	a.Log.Info(walelog.Backup, "complete wal restore", "", "", a.fields("wal-prefetch", url, seg, walelog.F("state", "complete"))...)
	return nil
}

// ControlSystemID is the system identifier of the cluster whose pg_wal
// holds dest, and that data directory ("" when dest is not in one).
func ControlSystemID(dest string) (uint64, string) { return controlSystemID(dest) }

// CheckFile checks a local copy of the WAL file name as a download is
// checked: page headers, length, and the system identifier when known.
func CheckFile(path, name string, sysid uint64, sysidFrom string) error {
	return checkFile(path, name, sysid, sysidFrom)
}

// FetchTo writes the decoded, checked content of the WAL file name to w,
// logging as Fetch does under action with dest as the destination named
// in the log lines. A remote store is first asked directly for the object
// in the configured format (one request instead of a listing and a
// download); only when that is absent is the name located among the other
// formats. It returns ErrNotFound (after the gap check) when the store
// lacks the file. When it fails, w may have received part of the content:
// the caller discards it.
func (a *Archive) FetchTo(ctx context.Context, action, name, dest string, w io.Writer, sysid uint64, sysidFrom string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	rc, key, found, lists, err := a.find(ctx, name)
	if err != nil {
		return err
	}
	url := a.Prefix.URL(key)
	a.Log.Info(walelog.Backup, "begin wal restore", "", "", a.fields(action, url, name, walelog.F("state", "begin"))...)
	notFound := func() error {
		if err := a.gapOf(ctx, name, lists); err != nil {
			return err
		}
		a.logNotFound(url)
		a.Log.Info(walelog.Backup, "complete wal restore", "", "", a.fields(action, url, name, walelog.F("state", "complete"))...)
		return ErrNotFound
	}
	if !found {
		return notFound()
	}
	if rc == nil {
		if rc, err = a.Store.Get(ctx, key); err != nil {
			if isNotFound(err) {
				// Deleted between the lookup and the download: as absent.
				return notFound()
			}
			return fmt.Errorf("wal-fetch: download %s: %w", url, err)
		}
	}
	defer rc.Close()
	c, finish, err := a.decodeChecked(rc, key, name, sysid, sysidFrom)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, c)
	if ferr := finish(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("wal-fetch: %s: %w", url, err)
	}
	a.Log.Info(a.backendLogger(), "completed download and decompression",
		fmt.Sprintf("Downloaded and decompressed %q to %q", url, dest), "")
	a.Log.Info(walelog.Backup, "complete wal restore", "", "", a.fields(action, url, name, walelog.F("state", "complete"))...)
	return nil
}

// getOrLocate is find for a WAL file other than a plain segment: the GET
// of key and the listing of name's copies go out together.
func (a *Archive) getOrLocate(ctx context.Context, key, name string) (rc io.ReadCloser, loc string, found bool, lists *[2][]storage.Object, err error) {
	wait, stop := inBackground(ctx, func(ctx context.Context) ([]storage.Object, error) { return a.Store.List(ctx, Dir+name) })
	defer stop()
	rc, err = a.Store.Get(ctx, key)
	switch {
	case err == nil:
		return rc, key, true, nil, nil // the listing is abandoned
	case !isNotFound(err):
		return nil, "", false, nil, fmt.Errorf("wal-fetch: download %s: %w", a.Prefix.URL(key), err)
	}
	objs, err := wait()
	if err != nil {
		return nil, "", false, nil, fmt.Errorf("wal-fetch %s: %w", name, err)
	}
	loc, found = a.locateIn(objs, name)
	if !found {
		loc = key
	}
	return nil, loc, found, nil, nil
}

// LogPromoted logs, as Fetch does, that a prefetched copy of name was
// served.
func (a *Archive) LogPromoted(name string) {
	url := a.Prefix.URL(Dir + name + a.Format.Ext())
	a.Log.Info(walelog.Backup, "promoted prefetched wal segment", "", "", a.fields("wal-fetch", url, name)...)
}
