package basebackup

import (
	"encoding/binary"
	"regexp"
	"strings"
)

// Page-level deltas (DELTA.md): which files are page-diffed, which pages a
// delta stores, and the page-delta member's header.

// defaultBlockSize is PostgreSQL's BLCKSZ unless built otherwise.
const defaultBlockSize = 8192

// pageHeaderSize is SizeOfPageHeaderData: the smallest valid pd_lower.
const pageHeaderSize = 24

// relSegRe matches a relation's main-fork segment: <relfilenode> or
// <relfilenode>.<segment>. Other forks (_fsm, _vm, _init) never match.
var relSegRe = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// dbDirRe and tsDirRe match the directories holding relation files.
var (
	dbDirRe = regexp.MustCompile(`^base/[0-9]+/$`)
	tsDirRe = regexp.MustCompile(`^pg_tblspc/[0-9]+/[^/]+/[0-9]+/$`)
)

// pageDiffable reports whether the tar member name is a relation main-fork
// segment, the only files a delta stores page by page.
func pageDiffable(name string) bool {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return false
	}
	dir, file := name[:i+1], name[i+1:]
	if !relSegRe.MatchString(file) {
		return false
	}
	return dir == "global/" || dbDirRe.MatchString(dir) || tsDirRe.MatchString(dir)
}

// pageQualifies reports whether a delta whose parent started at threshold
// stores this page: written at or after the threshold, new (pd_upper 0,
// as in an all-zero page), or with a header that is not valid (torn by a
// concurrent write: stored as read, WAL replay repairs it). pg must be
// one whole page; it is read in place, never copied.
func pageQualifies(pg []byte, threshold LSN) bool {
	upper := binary.LittleEndian.Uint16(pg[14:16])
	if upper == 0 {
		return true
	}
	lower := binary.LittleEndian.Uint16(pg[12:14])
	special := binary.LittleEndian.Uint16(pg[16:18])
	if lower < pageHeaderSize || lower > upper || upper > special || int(special) > len(pg) {
		return true
	}
	// pd_lsn is {xlogid, xrecoff}, each a native (little-endian) uint32.
	lsn := LSN(uint64(binary.LittleEndian.Uint32(pg[0:4]))<<32 | uint64(binary.LittleEndian.Uint32(pg[4:8])))
	return lsn >= threshold
}

// deltaHeaderSize is the fixed part of a page-delta member: magic,
// blcksz, nblocks, filesize.
const deltaHeaderSize = 8 + 4 + 4 + 8

// deltaMemberSize is the tar size of a page-delta member of n pages.
func deltaMemberSize(blcksz, n int) int64 {
	return int64(deltaHeaderSize) + 4*int64(n) + int64(n)*int64(blcksz)
}

// deltaMemberHeader encodes everything of a page-delta member before its
// pages: magic, blcksz, nblocks, filesize and the block numbers.
func deltaMemberHeader(blcksz int, blocks []uint32, filesize int64) []byte {
	b := make([]byte, deltaHeaderSize+4*len(blocks))
	copy(b, DeltaMagic)
	binary.LittleEndian.PutUint32(b[8:], uint32(blcksz))
	binary.LittleEndian.PutUint32(b[12:], uint32(len(blocks)))
	binary.LittleEndian.PutUint64(b[16:], uint64(filesize))
	for i, n := range blocks {
		binary.LittleEndian.PutUint32(b[deltaHeaderSize+4*i:], n)
	}
	return b
}
