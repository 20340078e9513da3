package basebackup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/walden-pg/walden/basebackup/tarx"
	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// FetchOptions configures backup-fetch.
type FetchOptions struct {
	Store       storage.Store
	Prefix      storage.Prefix
	Crypt       blob.Crypter // nil: encrypted partitions are an error
	Log         *walelog.Logger
	PGData      string
	Backup      string // a backup name or LATEST
	Concurrency int    // partitions downloaded at once
	// BlindRestore skips the tablespace symlink check; RestoreSpec is ""
	// (none), "SOURCE" or a JSON file (WAL-E's --restore-spec).
	BlindRestore bool
	RestoreSpec  string
	// Force empties the target first (keeping the configuration files and
	// tablespace links a target may hold), so an earlier failed restore
	// can be retried. A running cluster is still refused.
	Force bool
	// Progress, if set, learns the backup's expanded size and counts the
	// bytes extracted (the terminal progress bar).
	Progress ByteProgress
}

// FetchResult describes a finished restore.
type FetchResult struct {
	Backup     Backup
	Partitions int
	Files      int
	Bytes      int64
	// ConfigMissing lists the configuration files neither the backup nor
	// the target had (WAL-E's backups hold none of them).
	ConfigMissing []string
}

// partRef is one partition to restore; sum and size are known when the
// sentinel carries walden's manifest.
type partRef struct {
	key  string
	name string
	sum  string
	size int64
	// member is the partition's backup's index in a delta chain.
	member int
}

// Fetch restores a backup into o.PGData, which must not hold a cluster.
// Partitions are downloaded, decrypted, decompressed and extracted in
// parallel, straight into the directory. global/pg_control is written
// last, after every partition was read whole and verified: a restore that
// fails leaves a directory PostgreSQL refuses to start. A delta restores
// its whole chain (LoadChain first, then every member's partitions at
// once through an overlay: DELTA.md).
func Fetch(ctx context.Context, o FetchOptions) (FetchResult, error) {
	var res FetchResult
	pgdata, err := filepath.Abs(o.PGData)
	if err != nil {
		return res, err
	}
	if o.Force {
		if err := clearTarget(pgdata); err != nil {
			return res, err
		}
	}
	if err := checkTarget(pgdata); err != nil {
		return res, err
	}
	bs, bi, err := resolveIn(ctx, o.Store, o.Backup)
	if err != nil {
		return res, err
	}
	b := bs[bi]
	res.Backup = b
	// A delta's whole chain is read and checked before anything is
	// written: a missing or replaced parent fails here.
	var chain *Chain
	if b.IsDelta {
		if chain, err = LoadChain(ctx, o.Store, o.Crypt, bs, bi, o.Concurrency); err != nil {
			return res, err
		}
		b = chain.Newest()
	}
	if err := b.Load(ctx, o.Store); err != nil {
		return res, err
	}
	res.Backup = b
	if o.Progress != nil && b.Sentinel != nil {
		total := b.Sentinel.ExpandedSizeBytes
		if chain != nil {
			total = 0
			for _, m := range chain.Members {
				total += m.Sentinel.ExpandedSizeBytes
			}
		}
		o.Progress.SetTotal(total)
	}

	uid, gid := restoreOwner(pgdata)
	own := func(p string) {
		if uid >= 0 {
			_ = os.Lchown(p, uid, gid)
		}
	}
	spec, err := restoreSpec(pgdata, o.RestoreSpec, b.Sentinel)
	if err != nil {
		return res, err
	}
	if o.RestoreSpec != "" {
		if err := buildRestorePaths(spec, own); err != nil {
			return res, err
		}
	}
	if !o.BlindRestore {
		if err := verifyRestorePaths(spec); err != nil {
			return res, err
		}
	}
	if err := mkdirOwned(pgdata, own); err != nil {
		return res, err
	}
	var parts []partRef
	if chain == nil {
		parts, err = partitions(ctx, o, b)
	} else {
		// Newest member first: its pages then need no overwriting.
		for k := len(chain.Members) - 1; k >= 0 && err == nil; k-- {
			var ps []partRef
			ps, err = partitions(ctx, o, chain.Members[k])
			for i := range ps {
				ps[i].member = k
			}
			parts = append(parts, ps...)
		}
	}
	if err != nil {
		return res, err
	}
	res.Partitions = len(parts)
	hadConfig := map[string]bool{}
	for _, c := range []string{"postgresql.conf", "pg_hba.conf", "pg_ident.conf"} {
		if _, err := os.Lstat(filepath.Join(pgdata, c)); err == nil {
			hadConfig[c] = true
		}
	}

	ex, err := tarx.New(pgdata, tarx.Options{
		Tablespaces: tablespaceDirs(pgdata),
		UID:         uid, GID: gid,
		Keep:  keepConfig,
		Defer: func(rel string) bool { return rel == "global/pg_control" },
	})
	if err != nil {
		return res, err
	}
	defer ex.Close()
	var ov *overlay
	if chain != nil {
		if ov, err = newOverlay(ex, chain); err != nil {
			return res, fmt.Errorf("backup %s cannot be restored: %v", b.Name, err)
		}
	}
	ok := false
	defer func() {
		if !ok {
			// Whatever happened, no pg_control: PostgreSQL must not start here.
			os.Remove(filepath.Join(pgdata, "global", "pg_control"))
		}
	}()

	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.Concurrency, 1))
	for _, p := range parts {
		g.Go(func() error {
			var f tarx.Filter
			name := p.name
			if ov != nil {
				f = ov.filter(p.member)
				name = chain.Members[p.member].Name + "/" + p.name
			}
			st, err := fetchPartition(gctx, o, ex, p, f)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			mu.Lock()
			res.Files += st.Files
			res.Bytes += st.Bytes
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return res, fetchFailed(ctx, b.Name, pgdata, err)
	}
	if ov != nil {
		if err := ov.finish(); err != nil {
			return res, fetchFailed(ctx, b.Name, pgdata, err)
		}
	}
	if err := walDir(pgdata, uid, gid); err != nil {
		return res, fetchFailed(ctx, b.Name, pgdata, err)
	}
	if err := ex.Finish(); err != nil {
		return res, fetchFailed(ctx, b.Name, pgdata, err)
	}
	if _, err := os.Stat(filepath.Join(pgdata, "global", "pg_control")); err != nil {
		return res, fetchFailed(ctx, b.Name, pgdata, errors.New("the backup holds no global/pg_control"))
	}
	for _, c := range []string{"postgresql.conf", "pg_hba.conf", "pg_ident.conf"} {
		if _, err := os.Lstat(filepath.Join(pgdata, c)); err != nil && !hadConfig[c] {
			res.ConfigMissing = append(res.ConfigMissing, c)
		}
	}
	ok = true
	return res, nil
}

func fetchFailed(ctx context.Context, name, pgdata string, err error) error {
	if ctx.Err() != nil {
		err = fmt.Errorf("interrupted (%v)", context.Cause(ctx))
	}
	return fmt.Errorf("restore of %s into %s failed: %v; the directory is incomplete and PostgreSQL will not start on it (no global/pg_control); retry with --force to empty it first", name, pgdata, err)
}

// restoreOwner is who owns restored files. As root, walden gives them to
// the owner of the target directory (made by the operator for PostgreSQL);
// otherwise files belong to whoever runs the restore, as with WAL-E.
func restoreOwner(pgdata string) (uid, gid int) {
	if os.Geteuid() != 0 {
		return -1, -1
	}
	for _, d := range []string{pgdata, filepath.Dir(pgdata)} {
		if fi, err := os.Stat(d); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				return int(st.Uid), int(st.Gid)
			}
			if d == pgdata {
				return -1, -1
			}
		}
	}
	return -1, -1
}

// partitions lists what to restore: the manifest's partitions when the
// sentinel has one (with their sizes and checksums), else every part_N
// object, as WAL-E found them.
func partitions(ctx context.Context, o FetchOptions, b Backup) ([]partRef, error) {
	dir := PartitionDir(b.Name)
	if m := b.Sentinel.Walden; m != nil && len(m.Partitions) > 0 {
		var out []partRef
		for _, p := range m.Partitions {
			if strings.Contains(p.Name, "/") {
				return nil, fmt.Errorf("%s: bad partition name %q in the sentinel", b.Name, p.Name)
			}
			out = append(out, partRef{key: dir + p.Name, name: p.Name, sum: p.SHA256, size: p.StoredSize})
		}
		return out, nil
	}
	objs, err := o.Store.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	var out []partRef
	for _, obj := range objs {
		rest := strings.TrimPrefix(obj.Key, dir)
		m := partitionRe.FindStringSubmatch(rest)
		if m == nil || strings.Contains(rest, "/") {
			o.Log.Warn(fetchLogger(o.Prefix.Scheme), unexpectedKeyMsg(o.Prefix.Scheme),
				fmt.Sprintf("The unexpected key is stored at %q.", o.Prefix.URL(obj.Key)),
				"This means an unexpected key was found in a WAL-E prefix.  It can be harmless, or the result a bug or misconfiguration.")
			continue
		}
		n, _ := strconv.Atoi(m[1])
		seen[n] = true
		out = append(out, partRef{key: obj.Key, name: rest, size: -1})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no partitions under %s", b.Name, o.Prefix.URL(dir))
	}
	for i := range len(seen) {
		if !seen[i] {
			return nil, fmt.Errorf("%s: partition %d is missing from %s", b.Name, i, o.Prefix.URL(dir))
		}
	}
	return out, nil
}

// fetchPartition streams one partition into the extractor and checks that
// the stored bytes are the ones the backup wrote.
func fetchPartition(ctx context.Context, o FetchOptions, ex *tarx.Extractor, p partRef, f tarx.Filter) (tarx.Stats, error) {
	o.Log.Info(fetchLogger(o.Prefix.Scheme), "beginning partition download",
		fmt.Sprintf("The partition being downloaded is %s.", p.name),
		fmt.Sprintf("The absolute %s is %s.", keyNoun(o.Prefix.Scheme), o.Prefix.Key(p.key)))
	rc, err := o.Store.Get(ctx, p.key)
	if err != nil {
		return tarx.Stats{}, err
	}
	defer rc.Close()
	hr := &hashReader{r: rc, h: sha256.New()}
	br, err := blob.NewReader(p.key, hr, o.Crypt)
	if err != nil {
		return tarx.Stats{}, err
	}
	st, err := ex.ExtractFiltered(ctx, withProgress(br, o.Progress), f)
	if err == nil {
		// The tar end marker is not the end of the stream: read the rest so
		// codec trailers, checksums and the MDC are checked too.
		_, err = io.Copy(io.Discard, br)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		_, err = io.Copy(io.Discard, hr)
	}
	if err != nil {
		if p.sum != "" && !errors.Is(err, context.Canceled) {
			// Tell corruption from other trouble when the manifest allows.
			io.Copy(io.Discard, hr)
			if got := hex.EncodeToString(hr.h.Sum(nil)); got != p.sum {
				return st, fmt.Errorf("stored object is corrupt (SHA-256 %s, the backup recorded %s): %w", got, p.sum, err)
			}
		}
		return st, err
	}
	if p.size >= 0 && hr.n != p.size {
		return st, fmt.Errorf("stored object is %d bytes, the backup recorded %d", hr.n, p.size)
	}
	if p.sum != "" {
		if got := hex.EncodeToString(hr.h.Sum(nil)); got != p.sum {
			return st, fmt.Errorf("stored object is corrupt: SHA-256 %s, the backup recorded %s", got, p.sum)
		}
	}
	return st, nil
}

type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// walDir gives the restored cluster an empty WAL directory with
// archive_status (WAL-E's backups hold pg_wal empty, or not at all).
func walDir(pgdata string, uid, gid int) error {
	name := "pg_wal"
	if v, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION")); err == nil {
		if f, err := strconv.ParseFloat(strings.TrimSpace(string(v)), 64); err == nil && f < 10 {
			name = "pg_xlog"
		}
	}
	wd := filepath.Join(pgdata, name)
	if fi, err := os.Lstat(wd); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if fi, err := os.Stat(wd); err != nil || !fi.IsDir() {
			return nil // a link to WAL storage of the old host; the operator's to fix
		}
	}
	for _, d := range []string{wd, filepath.Join(wd, "archive_status")} {
		if _, err := os.Stat(d); err == nil {
			continue
		}
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if uid >= 0 {
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}

// fetchLogger is the logger name of WAL-E's per-backend fetch worker.
func fetchLogger(scheme string) string {
	switch scheme {
	case "s3":
		return "wal_e.worker.s3.s3_worker"
	case "gs":
		return "wal_e.worker.gs.gs_worker"
	}
	return "wal_e.worker.file.file_worker"
}

func keyNoun(scheme string) string {
	switch scheme {
	case "s3":
		return "S3 key"
	case "gs":
		return "GCS object"
	}
	return "file key"
}

func unexpectedKeyMsg(scheme string) string {
	if scheme == "gs" {
		return "unexpected object found in tar volume directory"
	}
	return "unexpected key found in tar volume directory"
}
