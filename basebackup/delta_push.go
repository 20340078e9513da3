package basebackup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// manifestFormat is the manifest format_version walden writes: 2 since
// backups carry a file list (DELTA.md).
const manifestFormat = 2

// fileListFormat is the file list's own format_version.
const fileListFormat = 1

// deltaParent is the backup a delta builds on.
type deltaParent struct {
	name        string
	sentinelSHA string
	startLSN    LSN
	full        string // the chain's full backup
	step        int    // the parent's step: 0 for a full backup
	blockSize   int
	files       map[string]*FileEntry
}

// clusterID is what a parent must share with the cluster backed up.
type clusterID struct {
	sysID     *uint64
	version   int // server_version_num
	timeline  uint32
	startLSN  LSN
	blockSize int
}

// chooseParent picks the parent of a delta: the newest complete backup,
// when it is a walden backup of format 2 with a readable file list, of the
// same system, major version and timeline, whose chain has fewer than
// maxSteps deltas. Otherwise it returns nil and why the backup is full.
// Failures to read are reasons too: a full backup is always safe.
func chooseParent(ctx context.Context, st storage.Store, crypt blob.Crypter, pgdata string, maxSteps int, c clusterID) (*deltaParent, string) {
	bs, err := List(ctx, st)
	if err != nil {
		return nil, "the store could not be listed: " + oneLine(err.Error())
	}
	b, ok, err := LatestUsable(ctx, st, bs)
	if err != nil {
		return nil, "the newest backup could not be read: " + oneLine(err.Error())
	}
	if !ok {
		return nil, "there is no backup in the store to build on"
	}
	raw, err := readAll(ctx, st, b.SentinelKey, 16<<20)
	if err != nil {
		return nil, fmt.Sprintf("the sentinel of the newest backup %s could not be read: %s", b.Name, oneLine(err.Error()))
	}
	s, err := ParseSentinel(raw)
	if err != nil {
		return nil, fmt.Sprintf("the sentinel of the newest backup %s is not valid", b.Name)
	}
	m := s.Walden
	switch {
	case m == nil:
		return nil, fmt.Sprintf("newest backup %s was not written by walden (it has no file list)", b.Name)
	case m.FormatVersion < manifestFormat || m.Files == nil:
		return nil, fmt.Sprintf("newest backup %s has no file list (written before format %d)", b.Name, manifestFormat)
	case s.SystemIdentifier == nil || c.sysID == nil || *s.SystemIdentifier != *c.sysID:
		return nil, fmt.Sprintf("newest backup %s is of another database system", b.Name)
	case majorVersion(s.PgVersion) != majorVersion(c.version):
		return nil, fmt.Sprintf("newest backup %s is of PostgreSQL %d, the cluster runs %d", b.Name, majorVersion(s.PgVersion), majorVersion(c.version))
	case m.Timeline != c.timeline:
		return nil, fmt.Sprintf("newest backup %s is on timeline %d, the cluster is on timeline %d", b.Name, m.Timeline, c.timeline)
	}
	p := &deltaParent{name: b.Name, full: b.Name}
	if d := m.Delta; d != nil {
		p.full, p.step = d.Full, d.Step
	}
	if p.step+1 > maxSteps {
		return nil, fmt.Sprintf("the chain of %s has reached WALDEN_DELTA_MAX_STEPS=%d", p.full, maxSteps)
	}
	if p.startLSN, err = ParseLSN(m.StartLSN); err != nil || p.startLSN >= c.startLSN {
		return nil, fmt.Sprintf("newest backup %s has no usable start position", b.Name)
	}
	sum := sha256.Sum256(raw)
	p.sentinelSHA = hex.EncodeToString(sum[:])
	b.Sentinel = s
	fl, err := readParentFileList(ctx, st, crypt, pgdata, b)
	if err != nil {
		return nil, fmt.Sprintf("the file list of newest backup %s could not be read: %s", b.Name, oneLine(err.Error()))
	}
	if fl.BlockSize != c.blockSize {
		return nil, fmt.Sprintf("newest backup %s has %d-byte pages, the cluster %d-byte ones", b.Name, fl.BlockSize, c.blockSize)
	}
	p.blockSize = fl.BlockSize
	p.files = make(map[string]*FileEntry, len(fl.Files))
	for i := range fl.Files {
		p.files[fl.Files[i].Path] = &fl.Files[i]
	}
	return p, ""
}

// majorVersion is the major version of a server_version_num: 150004 → 15,
// 90624 → 906.
func majorVersion(num int) int {
	if num >= 100000 {
		return num / 10000
	}
	return num / 100
}

func readAll(ctx context.Context, st storage.Store, key string, limit int64) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// readParentFileList reads the parent's file list. The plain list this
// host kept of the same stored object (delta_push_cache.go) spares the
// decryption, which needs a secret key a pushing host seldom has; it is
// used only while the stored object is still the one the sentinel records.
func readParentFileList(ctx context.Context, st storage.Store, crypt blob.Crypter, pgdata string, b Backup) (*FileList, error) {
	fi := b.Sentinel.Walden.Files
	if fl, ok := loadFileListCache(pgdata, fi.SHA256); ok && len(fl.Files) == fi.Count {
		key := Dir + b.Name + "/" + fi.Name
		raw, err := readAll(ctx, st, key, fi.StoredSize+1)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(raw)
		if int64(len(raw)) != fi.StoredSize || hex.EncodeToString(sum[:]) != fi.SHA256 {
			return nil, fmt.Errorf("%s does not match its size and SHA-256 in the sentinel", key)
		}
		return fl, nil
	}
	return readFileList(ctx, st, crypt, b)
}

// planDelta marks the walked relation files the parent holds to be
// stored page by page; everything else stays whole.
func planDelta(ms []member, p *deltaParent) {
	for i := range ms {
		if ms[i].kind != kindFile || !pageDiffable(ms[i].name) {
			continue
		}
		if e, ok := p.files[ms[i].name]; ok {
			ms[i].parent = e
		}
	}
}

// putFileList stores the backup's file list through the partitions'
// codec and encryption, and returns what the sentinel records of it.
func (p *pusher) putFileList(ctx context.Context, files []FileEntry, blcksz int) (*FilesInfo, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	p.fileList = FileList{FormatVersion: fileListFormat, BlockSize: blcksz, Files: files}
	data, err := json.Marshal(p.fileList)
	if err != nil {
		return nil, err
	}
	ext := p.o.Format.Ext()
	key := FilesKey(p.name, ext)
	stored, sum, err := p.up.putObject(ctx, key, data)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", p.o.Prefix.PushURL(key), err)
	}
	return &FilesInfo{Name: FilesObject + ext, StoredSize: stored, SHA256: sum, Count: len(files)}, nil
}

// deltaDecision logs whether this backup is a delta and of what, or why
// it is full.
func logDeltaDecision(log *walelog.Logger, p *deltaParent, why string, maxSteps int) {
	if p != nil {
		log.Info(walelog.WaldenName, "taking a delta backup",
			fmt.Sprintf("Parent %s (step %d of at most %d after %s).", p.name, p.step+1, maxSteps, p.full), "")
		return
	}
	log.Info(walelog.WaldenName, "taking a full backup: "+why, "", "")
}

// isWALECompat reports whether backups are written for a rollback to WAL-E
// (lzop), which must never find a delta in its store.
func isWALECompat(o PushOptions) bool {
	return o.Format.Codec != nil && strings.EqualFold(o.Format.Codec.Name(), "lzo")
}

// blockSize is the server's page size (BLCKSZ), PostgreSQL's default when
// it cannot be read.
func (s *pgSession) blockSize(ctx context.Context) int {
	var n int
	if err := s.conn.QueryRow(ctx, "SELECT current_setting('block_size')::int").Scan(&n); err != nil || n < 1024 {
		return defaultBlockSize
	}
	return n
}
