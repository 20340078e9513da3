package basebackup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"
)

// readChunk is the largest single read from PGDATA (and so the rate
// limiter's burst).
const readChunk = 256 << 10

// tarWriter writes members into one partition's tar stream.
type tarWriter struct {
	tw      *tar.Writer
	limiter *rate.Limiter // nil: unlimited
	read    *atomic.Int64 // bytes read from PGDATA, shared by all partitions
	names   *idNames
	buf     []byte

	expanded int64 // sum of member sizes written
	members  int

	// The file list entries of the regular files written (format 2).
	own   string // this backup's name: the base of files stored whole
	files []FileEntry

	// Delta backups: pages at or after threshold are stored (pages.go).
	threshold LSN
	blcksz    int
	pageBuf   []byte // large reads of page-diffed files, reused
}

func newTarWriter(w io.Writer, limiter *rate.Limiter, read *atomic.Int64, names *idNames) *tarWriter {
	size := readChunk
	if limiter != nil && limiter.Burst() < size {
		size = limiter.Burst() // WaitN refuses more than the burst
	}
	return &tarWriter{tw: tar.NewWriter(w), limiter: limiter, read: read, names: names, buf: make([]byte, size)}
}

// add writes one member. A file that vanished since the walk is skipped.
func (t *tarWriter) add(ctx context.Context, m member) error {
	switch m.kind {
	case kindData:
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: m.name, Mode: 0o600, Size: int64(len(m.data)), ModTime: time.Now()}
		t.owner(hdr, nil)
		if err := t.tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := t.tw.Write(m.data); err != nil {
			return err
		}
		t.count(hdr.Size)
		t.listWhole(m.name, hdr.Size)
		return nil
	case kindFile:
		if m.parent != nil {
			return t.addPages(ctx, m)
		}
		return t.addFile(ctx, m)
	}
	stat := os.Lstat
	if m.follow {
		stat = os.Stat
	}
	fi, err := stat(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: m.name, Mode: int64(fi.Mode().Perm() | modeBits(fi.Mode())), ModTime: fi.ModTime()}
	switch {
	case m.kind == kindDir && fi.IsDir():
		hdr.Typeflag = tar.TypeDir
	case m.kind == kindSymlink && fi.Mode()&fs.ModeSymlink != 0:
		hdr.Typeflag = tar.TypeSymlink
		if hdr.Linkname, err = os.Readlink(m.path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
	default:
		return nil // replaced by something else since the walk
	}
	t.owner(hdr, fi)
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	t.count(0)
	return nil
}

// addFile stores a regular file with the size it has when opened. tar
// needs the size up front, so a file that grows while it is read is cut at
// that size and one that shrinks is padded with zeros (as WAL-E did);
// PostgreSQL's WAL replay repairs such torn files.
func (t *tarWriter) addFile(ctx context.Context, m member) error {
	f, fi, err := openMember(m)
	if f == nil || err != nil {
		return err
	}
	defer f.Close()
	return t.writeWhole(ctx, m, f, fi)
}

// openMember opens a regular file member; a nil file and nil error mean
// it vanished or is no longer a regular file, and is skipped.
func openMember(m member) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(m.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, nil
	}
	return f, fi, nil
}

func (t *tarWriter) writeWhole(ctx context.Context, m member, f *os.File, fi fs.FileInfo) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: m.name, Mode: int64(fi.Mode().Perm() | modeBits(fi.Mode())),
		Size: fi.Size(), ModTime: fi.ModTime()}
	t.owner(hdr, fi)
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	left := hdr.Size
	for left > 0 {
		n := int64(len(t.buf))
		if left < n {
			n = left
		}
		if t.limiter != nil {
			if err := t.limiter.WaitN(ctx, int(n)); err != nil {
				return err
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		got, rerr := io.ReadFull(f, t.buf[:n])
		if got > 0 {
			t.read.Add(int64(got))
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			clear(t.buf[got:n]) // the file shrank: pad
			got = int(n)
		} else if rerr != nil {
			return fmt.Errorf("read %s: %w", m.path, rerr)
		}
		if _, err := t.tw.Write(t.buf[:got]); err != nil {
			return err
		}
		left -= int64(got)
	}
	t.count(hdr.Size)
	t.listWhole(m.name, hdr.Size)
	return nil
}

// listWhole records a file this backup holds whole, with the size stored.
func (t *tarWriter) listWhole(name string, size int64) {
	t.files = append(t.files, FileEntry{Path: name, Size: size, Kind: FileWhole, Base: t.own})
}

func (t *tarWriter) count(size int64) {
	t.expanded += size
	t.members++
}

func (t *tarWriter) close() error { return t.tw.Close() }

// modeBits carries setuid, setgid and sticky into tar's mode field.
func modeBits(m fs.FileMode) fs.FileMode {
	var b fs.FileMode
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// owner records numeric ids and their names, as Python's tarfile did.
// Members held in memory take the data directory owner's ids.
func (t *tarWriter) owner(hdr *tar.Header, fi fs.FileInfo) {
	uid, gid := t.names.defUID, t.names.defGID
	if fi != nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	hdr.Uid, hdr.Gid = uid, gid
	hdr.Uname, hdr.Gname = t.names.user(uid), t.names.group(gid)
}

// idNames caches user and group names.
type idNames struct {
	mu             sync.Mutex
	users, groups  map[int]string
	defUID, defGID int
}

func newIDNames(pgdata string) *idNames {
	n := &idNames{users: map[int]string{}, groups: map[int]string{}, defUID: os.Getuid(), defGID: os.Getgid()}
	if fi, err := os.Stat(pgdata); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n.defUID, n.defGID = int(st.Uid), int(st.Gid)
		}
	}
	return n
}

func (n *idNames) user(id int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.users[id]; ok {
		return s
	}
	s := ""
	if u, err := user.LookupId(strconv.Itoa(id)); err == nil {
		s = u.Username
	}
	n.users[id] = s
	return s
}

func (n *idNames) group(id int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.groups[id]; ok {
		return s
	}
	s := ""
	if g, err := user.LookupGroupId(strconv.Itoa(id)); err == nil {
		s = g.Name
	}
	n.groups[id] = s
	return s
}
