package basebackup

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
)

// pageReadSize is the size of one read of a page-diffed file: large reads
// keep a delta's scan of unchanged pages as cheap as a sequential copy.
const pageReadSize = 1 << 20

// addPages stores a relation file of a delta as a page-delta member
// (DELTA.md), in two passes over the file:
//
//  1. read it in large chunks and check each page header in place,
//     collecting the numbers of the pages to store;
//  2. read those pages again, in runs of consecutive blocks, and write them
//     from the read buffer straight into the tar stream.
//
// tar needs the member's size before its bytes, and the second pass gives
// it without holding any page in memory: a file whose pages all changed
// costs one buffer, not the file. The pages re-read were read a moment
// before and come from the page cache; with few changed pages the second
// pass is small.
//
// The size is the one the file has when opened, as for a whole file: pages
// past the end of a file that shrinks while read are stored as zeros (new
// pages), and what a file grows by is not read; WAL replay repairs both.
// A file whose size is not a page multiple is stored whole.
func (t *tarWriter) addPages(ctx context.Context, m member) error {
	f, fi, err := openMember(m)
	if f == nil || err != nil {
		return err
	}
	defer f.Close()
	bs := int64(t.blcksz)
	size := fi.Size()
	if size%bs != 0 {
		return t.writeWhole(ctx, m, f, fi)
	}
	if t.pageBuf == nil {
		t.pageBuf = make([]byte, pageReadSize/t.blcksz*t.blcksz)
	}
	buf := t.pageBuf
	parentBlocks := m.parent.Size / bs // a partial last page counts as beyond

	var blocks []uint32
	for off := int64(0); off < size; {
		n := min(int64(len(buf)), size-off)
		got, err := t.readAt(ctx, f, m.path, buf[:n], off)
		if err != nil {
			return err
		}
		t.read.Add(int64(got))
		for i := int64(0); i < n; i += bs {
			b := (off + i) / bs
			if b >= parentBlocks || pageQualifies(buf[i:i+bs], t.threshold) {
				blocks = append(blocks, uint32(b))
			}
		}
		off += n
	}

	entry := FileEntry{Path: m.name, Size: size, Kind: FilePages, Base: m.parent.Base}
	if len(blocks) == 0 && size == m.parent.Size {
		t.files = append(t.files, entry) // unchanged: nothing stored
		return nil
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: m.name + DeltaMemberSuffix, Mode: int64(fi.Mode().Perm()),
		Size: deltaMemberSize(t.blcksz, len(blocks)), ModTime: fi.ModTime()}
	t.owner(hdr, fi)
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := t.tw.Write(deltaMemberHeader(t.blcksz, blocks, size)); err != nil {
		return err
	}
	per := len(buf) / t.blcksz
	for i := 0; i < len(blocks); {
		// A run of consecutive blocks, at most one buffer long.
		j := i + 1
		for j < len(blocks) && j-i < per && blocks[j] == blocks[j-1]+1 {
			j++
		}
		n := int64(j-i) * bs
		if _, err := t.readAt(ctx, f, m.path, buf[:n], int64(blocks[i])*bs); err != nil {
			return err
		}
		if _, err := t.tw.Write(buf[:n]); err != nil {
			return err
		}
		i = j
	}
	t.count(hdr.Size)
	t.files = append(t.files, entry)
	return nil
}

// readAt fills p from off under the read rate limit; bytes past the end
// of the file read as zeros. It returns how many bytes the file gave.
func (t *tarWriter) readAt(ctx context.Context, f *os.File, path string, p []byte, off int64) (int, error) {
	if t.limiter != nil {
		for left := len(p); left > 0; {
			n := min(left, t.limiter.Burst())
			if err := t.limiter.WaitN(ctx, n); err != nil {
				return 0, err
			}
			left -= n
		}
	} else if err := ctx.Err(); err != nil {
		return 0, err
	}
	got, err := f.ReadAt(p, off)
	if err == io.EOF {
		clear(p[got:])
		err = nil
	}
	if err != nil {
		return got, fmt.Errorf("read %s: %w", path, err)
	}
	return got, nil
}
