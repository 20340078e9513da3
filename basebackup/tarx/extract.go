// Package tarx extracts base backup tar streams into a data directory:
// WAL-E's dialects (pax and GNU headers, a first member named "/" that
// stands for the data directory), several partitions at once, hard links
// that point into another partition, and nothing ever written outside the
// data directory or its tablespaces.
package tarx

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walden-pg/walden/internal/ctxio"
)

// Options configures an Extractor.
type Options struct {
	// Tablespaces maps a tablespace OID to the directory that members
	// named pg_tblspc/<oid>/... are written into.
	Tablespaces map[string]string
	// UID and GID own every extracted entry; -1 leaves the owner alone.
	UID, GID int
	// Keep names members that are not written when the path already
	// exists (configuration the operator put in place first).
	Keep func(rel string) bool
	// Defer names members held in memory and written by Finish, after
	// everything else (global/pg_control: without it PostgreSQL refuses
	// to start, so a failed restore cannot be started by mistake).
	Defer func(rel string) bool
}

// Stats counts what one Extract call wrote.
type Stats struct {
	Files   int
	Bytes   int64
	Skipped int // special files, and kept files that already existed
}

// Extractor writes tar members under one directory. It is safe to call
// Extract from several goroutines at once.
type Extractor struct {
	root   *os.Root
	spaces map[string]*os.Root
	o      Options

	mu       sync.Mutex
	dirs     map[dirKey]*dirAttr
	links    []link
	deferred []deferredFile
}

type dirKey struct {
	root *os.Root
	rel  string
}

type dirAttr struct {
	mode  fs.FileMode
	mtime time.Time
	set   bool // attributes came from the archive
}

type link struct{ name, target string }

type deferredFile struct {
	root  *os.Root
	rel   string
	data  []byte
	mode  fs.FileMode
	mtime time.Time
}

// New opens dir (which must exist) for extraction.
func New(dir string, o Options) (*Extractor, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	e := &Extractor{root: root, spaces: map[string]*os.Root{}, o: o, dirs: map[dirKey]*dirAttr{}}
	for oid, d := range o.Tablespaces {
		r, err := os.OpenRoot(d)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("tablespace %s: %w", oid, err)
		}
		e.spaces[oid] = r
	}
	return e, nil
}

// Close releases the directories.
func (e *Extractor) Close() error {
	for _, r := range e.spaces {
		r.Close()
	}
	return e.root.Close()
}

// Clean maps a member name to a slash path relative to the data directory,
// "." for the directory itself ("/", "", ".", "./"). Absolute names and
// names that climb out with ".." are refused.
func Clean(name string) (string, error) {
	if name == "/" {
		return ".", nil
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("member %q has an absolute name", name)
	}
	var out []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("member %q climbs out of the data directory", name)
		}
		if strings.IndexByte(p, 0) >= 0 {
			return "", fmt.Errorf("member %q has a NUL byte in its name", name)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return ".", nil
	}
	return strings.Join(out, "/"), nil
}

// locate picks the directory a member goes to: its tablespace's for
// pg_tblspc/<oid>/..., the data directory's otherwise.
func (e *Extractor) locate(rel string) (*os.Root, string) {
	if rest, ok := strings.CutPrefix(rel, "pg_tblspc/"); ok {
		oid, sub, _ := strings.Cut(rest, "/")
		if r, ok := e.spaces[oid]; ok {
			if sub == "" {
				sub = "."
			}
			return r, sub
		}
	}
	return e.root, rel
}

// Extract writes every member of one tar stream. Hard links whose target is
// not there yet are kept for Finish (it may come in another partition).
func (e *Extractor) Extract(ctx context.Context, r io.Reader) (Stats, error) {
	return e.ExtractFiltered(ctx, r, Filter{})
}

// Filter changes what one ExtractFiltered call writes (a stream of an
// older member of a delta chain contributes only some files' contents).
type Filter struct {
	// FilesOnly skips directories, symbolic links and hard links.
	FilesOnly bool
	// File, if set, sees every regular-file member first, with its
	// cleaned name; handled reports that it consumed or skipped the
	// member, n the bytes it wrote. Otherwise the member is extracted as
	// usual.
	File func(rel string, hdr *tar.Header, r io.Reader) (handled bool, n int64, err error)
}

// ExtractFiltered is Extract with a Filter.
func (e *Extractor) ExtractFiltered(ctx context.Context, r io.Reader, f Filter) (Stats, error) {
	var st Stats
	tr := tar.NewReader(ctxio.Reader(ctx, r))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return st, nil
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return st, err
		}
		if f.FilesOnly || f.File != nil {
			handled, err := e.filtered(tr, hdr, f, &st)
			if err != nil {
				return st, err
			}
			if handled {
				continue
			}
		}
		if err := e.member(ctx, tr, hdr, &st); err != nil {
			return st, err
		}
	}
}

func (e *Extractor) filtered(tr *tar.Reader, hdr *tar.Header, f Filter, st *Stats) (bool, error) {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		if f.File == nil {
			return false, nil
		}
		rel, err := Clean(hdr.Name)
		if err != nil {
			return false, err
		}
		if rel == "." {
			return false, nil // member refuses it
		}
		handled, n, err := f.File(rel, hdr, tr)
		if err != nil {
			return false, fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if handled && n > 0 {
			st.Files++
			st.Bytes += n
		}
		return handled, nil
	default:
		if f.FilesOnly {
			st.Skipped++
			return true, nil
		}
	}
	return false, nil
}

// OpenInPlace opens rel (a cleaned member name) for writing at offsets,
// creating it and its parent directories when missing, owned as the
// extraction's other files. Unlike a member's extraction it never
// replaces an existing file: several streams write parts of it.
func (e *Extractor) OpenInPlace(rel string) (*os.File, error) {
	root, name := e.locate(rel)
	if dir := path.Dir(name); dir != "." {
		if err := e.mkdirAll(root, dir); err != nil {
			return nil, err
		}
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if e.o.UID >= 0 {
		if err := f.Chown(e.o.UID, e.o.GID); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// Kept reports whether rel is a member Keep protects and already exists.
func (e *Extractor) Kept(rel string) bool {
	if e.o.Keep == nil || !e.o.Keep(rel) {
		return false
	}
	root, name := e.locate(rel)
	_, err := root.Lstat(name)
	return err == nil
}

func (e *Extractor) member(ctx context.Context, tr *tar.Reader, hdr *tar.Header, st *Stats) error {
	rel, err := Clean(hdr.Name)
	if err != nil {
		return err
	}
	root, name := e.locate(rel)
	mode := fs.FileMode(hdr.Mode).Perm() | specialBits(hdr.Mode)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if name != "." {
			if err := e.mkdirAll(root, name); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		}
		e.mu.Lock()
		e.dirs[dirKey{root, name}] = &dirAttr{mode: mode, mtime: hdr.ModTime, set: true}
		e.mu.Unlock()
		return nil
	case tar.TypeReg, tar.TypeRegA:
		if name == "." {
			return fmt.Errorf("member %q: a file cannot replace the data directory", hdr.Name)
		}
		if e.o.Keep != nil && e.o.Keep(rel) {
			if _, err := root.Lstat(name); err == nil {
				st.Skipped++
				return nil
			}
		}
		if e.o.Defer != nil && e.o.Defer(rel) {
			data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
			e.mu.Lock()
			e.deferred = append(e.deferred, deferredFile{root, name, data, mode, hdr.ModTime})
			e.mu.Unlock()
			st.Files++
			st.Bytes += int64(len(data))
			return nil
		}
		n, err := e.writeFile(root, name, tr, mode, hdr.ModTime)
		if err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		st.Files++
		st.Bytes += n
		return nil
	case tar.TypeSymlink:
		if name == "." {
			return fmt.Errorf("member %q: a symlink cannot replace the data directory", hdr.Name)
		}
		if err := e.prepare(root, name); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if err := root.Symlink(hdr.Linkname, name); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if e.o.UID >= 0 {
			if err := root.Lchown(name, e.o.UID, e.o.GID); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		}
		return nil
	case tar.TypeLink:
		target, err := Clean(hdr.Linkname)
		if err != nil || target == "." {
			return fmt.Errorf("member %q: bad hard link target %q", hdr.Name, hdr.Linkname)
		}
		done, err := e.link(rel, target)
		if err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if !done {
			e.mu.Lock()
			e.links = append(e.links, link{rel, target})
			e.mu.Unlock()
		}
		return nil
	}
	// Devices, FIFOs and anything else have no business in a data directory.
	st.Skipped++
	return nil
}

// mkdirAll creates a directory and its missing parents, 0700 until Finish
// applies the archive's modes, and remembers them for Finish's ownership.
func (e *Extractor) mkdirAll(root *os.Root, name string) error {
	if fi, err := root.Lstat(name); err == nil && fi.IsDir() {
		return nil
	}
	if err := root.MkdirAll(name, 0o700); err != nil {
		return err
	}
	e.mu.Lock()
	for d := name; d != "." && d != "/"; d = path.Dir(d) {
		k := dirKey{root, d}
		if _, ok := e.dirs[k]; !ok {
			e.dirs[k] = &dirAttr{}
		}
	}
	e.mu.Unlock()
	return nil
}

// prepare makes the parent directory and clears the way for a new entry:
// an existing file or symlink is replaced, never followed.
func (e *Extractor) prepare(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		if err := e.mkdirAll(root, dir); err != nil {
			return err
		}
	}
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("a directory is in the way")
	}
	return root.Remove(name)
}

func (e *Extractor) writeFile(root *os.Root, name string, r io.Reader, mode fs.FileMode, mtime time.Time) (int64, error) {
	if err := e.prepare(root, name); err != nil {
		return 0, err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil && e.o.UID >= 0 {
		err = f.Chown(e.o.UID, e.o.GID)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chtimes(name, mtime, mtime)
	}
	return n, err
}

// link makes name a hard link to target; false when target does not
// exist yet. Across directories (data directory and a tablespace) it copies.
func (e *Extractor) link(name, target string) (bool, error) {
	troot, tname := e.locate(target)
	nroot, nname := e.locate(name)
	fi, err := troot.Lstat(tname)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("hard link target %s is not a regular file", target)
	}
	if err := e.prepare(nroot, nname); err != nil {
		return false, err
	}
	if troot == nroot {
		return true, nroot.Link(tname, nname)
	}
	src, err := troot.Open(tname)
	if err != nil {
		return false, err
	}
	defer src.Close()
	_, err = e.writeFile(nroot, nname, src, fi.Mode().Perm(), fi.ModTime())
	return err == nil, err
}

// Finish completes the extraction once every stream was extracted without
// error: pending hard links, directory modes, owners and times, a sync of
// everything, and last the deferred files.
func (e *Extractor) Finish() error {
	for _, l := range e.links {
		done, err := e.link(l.name, l.target)
		if err != nil {
			return fmt.Errorf("hard link %s: %w", l.name, err)
		}
		if !done {
			return fmt.Errorf("hard link %s: its target %s is not in the backup", l.name, l.target)
		}
	}
	// Deepest first, so setting a parent's time is not undone by a child.
	keys := make([]dirKey, 0, len(e.dirs))
	for k := range e.dirs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return strings.Count(keys[i].rel, "/") > strings.Count(keys[j].rel, "/") })
	for _, k := range keys {
		a := e.dirs[k]
		if k.rel == "." && k.root == e.root && a.set && a.mode&^0o750 != 0 {
			a.mode = 0o700 // PostgreSQL refuses any other data directory mode
		}
		if e.o.UID >= 0 {
			if err := k.root.Lchown(k.rel, e.o.UID, e.o.GID); err != nil {
				return err
			}
		}
		if !a.set {
			continue
		}
		if err := k.root.Chmod(k.rel, a.mode); err != nil {
			return err
		}
		if err := k.root.Chtimes(k.rel, a.mtime, a.mtime); err != nil {
			return err
		}
	}
	if err := e.Sync(); err != nil {
		return err
	}
	for _, d := range e.deferred {
		if err := e.writeDeferred(d); err != nil {
			return fmt.Errorf("%s: %w", d.rel, err)
		}
		// Writing it touched its directory; give back the archive's time.
		if a := e.dirs[dirKey{d.root, path.Dir(d.rel)}]; a != nil && a.set {
			_ = d.root.Chtimes(path.Dir(d.rel), a.mtime, a.mtime)
		}
	}
	return nil
}

// writeDeferred writes a held-back file under a temporary name, syncs it
// and renames it into place, so it appears whole or not at all.
func (e *Extractor) writeDeferred(d deferredFile) error {
	tmp := d.rel + ".walden-tmp"
	if err := e.prepare(d.root, tmp); err != nil {
		return err
	}
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(d.data)
	if err == nil {
		err = f.Chmod(d.mode)
	}
	if err == nil && e.o.UID >= 0 {
		err = f.Chown(e.o.UID, e.o.GID)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.root.Chtimes(tmp, d.mtime, d.mtime)
	}
	if err == nil {
		err = d.root.Rename(tmp, d.rel)
	}
	if err != nil {
		d.root.Remove(tmp)
		return err
	}
	return syncDir(d.root, path.Dir(d.rel))
}

// Sync flushes the data directory's and the tablespaces' file systems.
func (e *Extractor) Sync() error {
	roots := []*os.Root{e.root}
	for _, r := range e.spaces {
		roots = append(roots, r)
	}
	for _, r := range roots {
		f, err := r.Open(".")
		if err != nil {
			return err
		}
		err = unix.Syncfs(int(f.Fd()))
		f.Close()
		if err != nil && !errors.Is(err, syscall.ENOSYS) {
			return fmt.Errorf("syncfs %s: %w", r.Name(), err)
		}
	}
	return nil
}

func syncDir(root *os.Root, dir string) error {
	f, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// specialBits turns tar's setuid, setgid and sticky bits into fs bits.
func specialBits(m int64) fs.FileMode {
	var b fs.FileMode
	if m&0o4000 != 0 {
		b |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		b |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		b |= fs.ModeSticky
	}
	return b
}
