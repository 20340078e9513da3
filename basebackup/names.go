package basebackup

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Dir is the store directory holding base backups.
const Dir = "basebackups_005/"

const sentinelSuffix = "_backup_stop_sentinel.json"

// WAL-E matches names anchored at the start only (Python re.match).
var (
	nameRe      = regexp.MustCompile(`^base_([0-9A-F]{24})_([0-9A-F]{8})`)
	sentinelRe  = regexp.MustCompile(`^base_[0-9A-F]{24}_[0-9A-F]{8}_backup_stop_sentinel\.json`)
	partitionRe = regexp.MustCompile(`^part_(\d+)\.tar`)
)

// nameLen is len("base_") + 24 + len("_") + 8.
const nameLen = 38

// IsName reports whether s starts like a backup name (WAL-E's query test).
func IsName(s string) bool { return nameRe.MatchString(s) }

// SentinelKey is the key of a backup's sentinel, beside its directory.
func SentinelKey(name string) string { return Dir + name + sentinelSuffix }

// VersionKey is the key of a backup's extended_version.txt.
func VersionKey(name string) string { return Dir + name + "/extended_version.txt" }

// PartitionDir is the directory holding a backup's tar partitions.
func PartitionDir(name string) string { return Dir + name + "/tar_partitions/" }

// PartitionName is part_%08d.tar plus the codec extension.
func PartitionName(n int, ext string) string { return fmt.Sprintf("part_%08d.tar%s", n, ext) }

// PartitionKey is the key of partition n.
func PartitionKey(name string, n int, ext string) string {
	return PartitionDir(name) + PartitionName(n, ext)
}

// StartSegment returns the WAL segment name and the offset field of a
// backup name.
func StartSegment(name string) (seg, offset string, ok bool) {
	m := nameRe.FindStringSubmatch(name)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// LSN is a PostgreSQL write-ahead log position.
type LSN uint64

// ParseLSN reads PostgreSQL's "X/Y" form.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("%q is not an LSN (want X/Y in hex)", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not an LSN (want X/Y in hex)", s)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// DefaultSegmentSize is PostgreSQL's default wal_segment_size.
const DefaultSegmentSize = 16 << 20

// FileNameOffset computes what pg_walfile_name_offset(lsn) returns on
// timeline tli: the file holding the byte before lsn (so a position on a
// segment boundary names the previous file), and lsn's offset in its own
// segment. On a standby the function is not allowed, so walden computes it.
func FileNameOffset(tli uint32, lsn LSN, segSize uint64) (file string, offset uint64) {
	if segSize == 0 {
		segSize = DefaultSegmentSize
	}
	segno := uint64(lsn) / segSize
	if uint64(lsn)%segSize == 0 && segno > 0 {
		segno-- // XLByteToPrevSeg
	}
	perID := uint64(0x100000000) / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, segno/perID, segno%perID), uint64(lsn) % segSize
}

// SegmentOf is the file holding lsn itself (XLByteToSeg), for a REDO
// pointer read from pg_controldata.
func SegmentOf(tli uint32, lsn LSN, segSize uint64) string {
	if segSize == 0 {
		segSize = DefaultSegmentSize
	}
	segno := uint64(lsn) / segSize
	perID := uint64(0x100000000) / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, segno/perID, segno%perID)
}

// PadOffset renders an offset as WAL-E's lpad(file_offset::text, 8, '0'):
// decimal, zero-padded, and cut to 8 characters as lpad cuts.
func PadOffset(off uint64) string {
	s := fmt.Sprintf("%08d", off)
	return s[:8]
}

// BackupName is base_<file>_<offset>.
func BackupName(file string, offset uint64) string {
	return "base_" + file + "_" + PadOffset(offset)
}
