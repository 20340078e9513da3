package basebackup

import (
	"archive/tar"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/walden-pg/walden/basebackup/tarx"
)

// overlay restores the files of a delta chain: every partition of every
// member is streamed at once, and each file is written in place once, a
// page from a newer member never overwritten by an older one (DELTA.md).
type overlay struct {
	ex     *tarx.Extractor
	chain  *Chain
	newest int
	blk    int64
	files  map[string]*ovFile // the newest file list; read-only once built
}

// ovFile is one file of the newest file list.
type ovFile struct {
	size int64
	base int // chain index of the member holding its newest whole copy
	// direct: the newest member holds it whole, so nothing overlays it
	// and it is extracted as in a full restore.
	direct bool

	mu      sync.Mutex
	opened  bool // emptied on first open, so nothing stale survives
	whole   bool // the whole copy was written
	mode    fs.FileMode
	written bool // anything was written (for the stats)
	// rank[b] is 1 + the chain index of the delta whose page b holds, 0
	// when none has written it; nil until a delta page arrives. The whole
	// copy, older than every delta after its base, writes only blocks of
	// rank 0.
	rank []uint8
}

// chunkPool recycles the per-member copy buffers: a chain restore opens
// one per file per member, and fresh ones would keep the collector busy.
var chunkPool sync.Pool

func getChunk(n int64) *[]byte {
	if p, ok := chunkPool.Get().(*[]byte); ok && int64(cap(*p)) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n)
	return &b
}

// maxFetchChain bounds the members one restore reads (ranks are bytes).
const maxFetchChain = 255

// overlayChunk is how many pages are read and written per lock.
const overlayChunk = 64

func newOverlay(ex *tarx.Extractor, c *Chain) (*overlay, error) {
	if len(c.Members) > maxFetchChain {
		return nil, fmt.Errorf("its chain has %d members, more than %d", len(c.Members), maxFetchChain)
	}
	newest := len(c.Members) - 1
	fl := c.Lists[newest]
	pos := map[string]int{}
	for k, m := range c.Members {
		pos[m.Name] = k
	}
	ov := &overlay{ex: ex, chain: c, newest: newest, blk: int64(fl.BlockSize), files: make(map[string]*ovFile, len(fl.Files))}
	for _, f := range fl.Files {
		b := pos[f.Base]
		ov.files[f.Path] = &ovFile{size: f.Size, base: b, direct: b == newest}
	}
	return ov, nil
}

// newestOnly are members taken from the newest backup only, whether or
// not its file list names them.
func newestOnly(rel string) bool {
	switch rel {
	case "backup_label", "tablespace_map", "global/pg_control":
		return true
	}
	return false
}

// filter is how the partitions of chain member k are extracted.
func (ov *overlay) filter(k int) tarx.Filter {
	return tarx.Filter{
		FilesOnly: k != ov.newest, // directories and links: from the newest member
		File: func(rel string, hdr *tar.Header, r io.Reader) (bool, int64, error) {
			if p, ok := strings.CutSuffix(rel, DeltaMemberSuffix); ok {
				f := ov.files[p]
				if f == nil || k <= f.base {
					return true, 0, nil // dropped since, or older than its whole copy
				}
				n, err := ov.applyPages(k, p, f, hdr.Size, r)
				return true, n, err
			}
			f := ov.files[rel]
			if newestOnly(rel) {
				return k != ov.newest, 0, nil
			}
			switch {
			case f == nil:
				return true, 0, nil // not in the newest file list: absent after a restore
			case k < f.base:
				return true, 0, nil
			case k > f.base:
				return false, 0, fmt.Errorf("stored whole in %s, but the file list of %s says its newest whole copy is in %s",
					ov.chain.Members[k].Name, ov.chain.Newest().Name, ov.chain.Members[f.base].Name)
			case f.direct:
				return false, 0, nil
			}
			n, err := ov.writeWhole(rel, f, hdr, r)
			return true, n, err
		},
	}
}

// open opens a file of the chain for writing at offsets; the first open
// empties it. Called with f.mu held.
func (ov *overlay) open(rel string, f *ovFile) (*os.File, error) {
	fh, err := ov.ex.OpenInPlace(rel)
	if err != nil {
		return nil, err
	}
	if !f.opened {
		if err := fh.Truncate(0); err != nil {
			fh.Close()
			return nil, err
		}
		f.opened = true
	}
	return fh, nil
}

// writeWhole writes the base's whole copy of a file, except the blocks a
// newer delta already wrote.
func (ov *overlay) writeWhole(rel string, f *ovFile, hdr *tar.Header, r io.Reader) (int64, error) {
	if ov.ex.Kept(rel) {
		return 0, nil
	}
	f.mu.Lock()
	fh, err := ov.open(rel, f)
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	bp := getChunk(overlayChunk * ov.blk)
	defer chunkPool.Put(bp)
	buf := *bp
	var off, written int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			end := min(off+int64(n), f.size) // beyond the final size: cut anyway
			if end > off {
				w, err := ov.writeUnranked(fh, f, buf[:end-off], off)
				if err != nil {
					return written, err
				}
				written += w
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return written, rerr
		}
	}
	f.mu.Lock()
	f.whole, f.written = true, true
	f.mode = fs.FileMode(hdr.Mode).Perm()
	f.mu.Unlock()
	return written, nil
}

// writeUnranked writes p at off, skipping blocks a delta wrote.
func (ov *overlay) writeUnranked(fh *os.File, f *ovFile, p []byte, off int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rank == nil {
		_, err := fh.WriteAt(p, off)
		return int64(len(p)), err
	}
	var written int64
	first := off / ov.blk // whole copies start on block boundaries
	nb := (int64(len(p)) + ov.blk - 1) / ov.blk
	for i := int64(0); i < nb; {
		if f.rank[first+i] != 0 {
			i++
			continue
		}
		j := i
		for j < nb && f.rank[first+j] == 0 {
			j++
		}
		lo, hi := i*ov.blk, min(j*ov.blk, int64(len(p)))
		if _, err := fh.WriteAt(p[lo:hi], off+lo); err != nil {
			return written, err
		}
		written += hi - lo
		i = j
	}
	return written, nil
}

// deltaHeaderLen is magic, blcksz, nblocks and filesize.
const deltaHeaderLen = 8 + 4 + 4 + 8

// applyPages writes the pages of chain member k's page-delta member for a
// file, each unless a newer member already wrote that block.
func (ov *overlay) applyPages(k int, rel string, f *ovFile, memberSize int64, r io.Reader) (int64, error) {
	var h [deltaHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, fmt.Errorf("page-delta header: %w", err)
	}
	if string(h[:8]) != DeltaMagic {
		return 0, errors.New("not a page-delta member (bad magic)")
	}
	blcksz := int64(binary.LittleEndian.Uint32(h[8:]))
	nblocks := int64(binary.LittleEndian.Uint32(h[12:]))
	if blcksz != ov.blk {
		return 0, fmt.Errorf("page size %d, the file list says %d", blcksz, ov.blk)
	}
	if want := deltaHeaderLen + nblocks*(4+blcksz); memberSize != want {
		return 0, fmt.Errorf("member is %d bytes, its header says %d", memberSize, want)
	}
	raw := make([]byte, 4*nblocks)
	if _, err := io.ReadFull(r, raw); err != nil {
		return 0, fmt.Errorf("page-delta block list: %w", err)
	}
	blocks := make([]int64, nblocks)
	for i := range blocks {
		blocks[i] = int64(binary.LittleEndian.Uint32(raw[4*i:]))
		if i > 0 && blocks[i] <= blocks[i-1] {
			return 0, errors.New("page-delta block numbers are not strictly increasing")
		}
	}
	f.mu.Lock()
	fh, err := ov.open(rel, f)
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	nrank := (f.size + ov.blk - 1) / ov.blk
	rank := uint8(k + 1)
	bp := getChunk(overlayChunk * blcksz)
	defer chunkPool.Put(bp)
	buf := *bp
	var written int64
	for start := int64(0); start < nblocks; start += overlayChunk {
		cnt := min(overlayChunk, nblocks-start)
		p := buf[:cnt*blcksz]
		if _, err := io.ReadFull(r, p); err != nil {
			return written, fmt.Errorf("page-delta pages: %w", err)
		}
		w, err := ov.writeRanked(fh, f, blocks[start:start+cnt], p, rank, nrank)
		written += w
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// writeRanked writes each page of p (one per block in blocks) whose block
// holds nothing newer than rank.
func (ov *overlay) writeRanked(fh *os.File, f *ovFile, blocks []int64, p []byte, rank uint8, nrank int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rank == nil {
		f.rank = make([]uint8, nrank)
	}
	f.written = true
	var written int64
	take := func(i int) bool { return blocks[i] < nrank && f.rank[blocks[i]] < rank }
	for i := 0; i < len(blocks); {
		if !take(i) {
			i++
			continue
		}
		// A run of consecutive blocks is one write.
		j := i + 1
		for j < len(blocks) && blocks[j] == blocks[j-1]+1 && take(j) {
			j++
		}
		for x := i; x < j; x++ {
			f.rank[blocks[x]] = rank
		}
		page := p[int64(i)*ov.blk : int64(j)*ov.blk]
		if end := f.size - blocks[i]*ov.blk; int64(len(page)) > end {
			page = page[:end] // the last block of a file cut inside it
		}
		if _, err := fh.WriteAt(page, blocks[i]*ov.blk); err != nil {
			return written, err
		}
		written += int64(len(page))
		i = j
	}
	return written, nil
}

// finish checks that every overlaid file got its whole copy, then cuts or
// extends it to the size the newest file list records and gives it the
// whole copy's mode.
func (ov *overlay) finish() error {
	for rel, f := range ov.files {
		if f.direct {
			continue
		}
		if ov.ex.Kept(rel) {
			continue
		}
		if !f.whole {
			return fmt.Errorf("%s: its whole copy is not in the partitions of %s", rel, ov.chain.Members[f.base].Name)
		}
		fh, err := ov.ex.OpenInPlace(rel)
		if err != nil {
			return err
		}
		err = fh.Truncate(f.size)
		if err == nil {
			err = fh.Chmod(f.mode)
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		f.rank = nil
	}
	return nil
}
