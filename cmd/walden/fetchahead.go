//go:build !walden_wal

package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/walden-pg/walden/agent"
	"github.com/walden-pg/walden/agent/fastpath/server"
	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/wal"
	"github.com/walden-pg/walden/walelog"
)

// prefetchBytesVar bounds the agent's prefetch cache.
const prefetchBytesVar = "WALDEN_PREFETCH_BYTES"

// prefetchBytes reads WALDEN_PREFETCH_BYTES: a number of bytes, with an
// optional K, M or G suffix (powers of 1024).
func prefetchBytes() (int64, error) {
	v, set := os.LookupEnv(prefetchBytesVar)
	v = strings.TrimSpace(v)
	if !set || v == "" {
		return agent.DefaultPrefetchBytes, nil
	}
	mult := int64(1)
	switch strings.ToUpper(v[len(v)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	}
	num := v
	if mult != 1 {
		num = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, &config.Error{Var: prefetchBytesVar, Msg: fmt.Sprintf("must be a positive number of bytes (K, M or G suffix allowed), not %q", v)}
	}
	return n * mult, nil
}

// newFetchAhead makes the agent's prefetch cache: under systemd's
// CacheDirectory when the unit has one, else the temporary directory
// (private to the service under PrivateTmp). Without a usable directory
// the agent still serves wal-fetch, without prefetching.
func newFetchAhead(log *walelog.Logger, limit int64) *agent.Prefetcher {
	root := os.Getenv("CACHE_DIRECTORY")
	if i := strings.IndexByte(root, ':'); i >= 0 {
		root = root[:i]
	}
	if root == "" {
		root = os.TempDir()
	}
	p, err := agent.NewPrefetcher(root, limit)
	if err != nil {
		log.Warn(walelog.WaldenName, "WAL prefetch in the agent is off",
			fmt.Sprintf("Cannot make the prefetch cache under %s: %v.", root, unwrapOp(err)),
			"wal-fetch through the agent fetches each segment when asked.",
			walelog.F("action", "agent"), walelog.F("state", "starting"))
		return nil
	}
	return p
}

// prefixKey names a store prefix's cache directory.
func prefixKey(ar *wal.Archive) string {
	sum := sha256.Sum256([]byte(ar.Prefix.URL("")))
	return "p-" + hex.EncodeToString(sum[:6])
}

// fetchReceive serves a wal-fetch whose client writes the file itself:
// from the prefetch cache when it holds the segment, else from the store,
// and in both cases it starts fetching the segments after it. Exit
// statuses are fetchWith's.
func (w *agentWAL) fetchReceive(ctx context.Context, cur *config.Settings, a *app, p *args, data io.Writer) (notFound bool, err error) {
	name, dest := p.pos[0], p.pos[1]
	ar, err := w.archive(cur, a)
	if err != nil {
		a.fail(err)
		return false, exitStatus(exitFetchFailed)
	}
	sysid, sysidFrom := wal.ControlSystemID(dest)
	bw := bufio.NewWriterSize(data, 1<<20)
	pf, n := w.ahead, p.int("--prefetch", 8)
	if pf != nil && n > 0 && wal.Classify(name) == wal.KindHistory && !filepath.IsAbs(dest) {
		// A timeline history probe into this data directory (relative
		// paths are served only from it): a recovery is starting or
		// ending. At its start, fetch where backup_label says it begins.
		if start := backupLabelStart("backup_label"); start != "" {
			pf.Expect(w.prefetchSource(cur, a, prefixKey(ar), sysid, sysidFrom), start, n)
		}
	}
	if pf != nil && n > 0 && wal.Classify(name) == wal.KindSegment {
		src := w.prefetchSource(cur, a, prefixKey(ar), sysid, sysidFrom)
		pf.Want(src, name, n)
		if path, ok := pf.Take(ctx, src.Key, name); ok {
			var err error
			if server.TakesFiles(ctx) {
				if next := wal.Future(name, 1); pf.MayEndAt(src.Key, next[0]) {
					// Perhaps the archive's last segment: PostgreSQL asks
					// for that one again at the end of recovery.
					pf.Keep(src.Key, name, path)
				}
				err = serveCachedFile(ctx, path, name, sysid, sysidFrom)
				// The client may still be linking it.
				server.AfterHangUp(ctx, func() { os.Remove(path) })
			} else {
				err = serveCached(path, name, sysid, sysidFrom, bw)
				os.Remove(path)
			}
			pf.Fill(src, name, n)
			if err == nil {
				pf.Served(name)
				ar.LogPromoted(name)
				return false, nil
			}
			bw.Reset(data)
			server.ResetData(ctx)
			a.log.Warn(walelog.Prefetch, "discarded an invalid prefetched segment",
				fmt.Sprintf("%s: %v", path, err), "The segment is downloaded again.")
		}
		// After Take, which waited for a fetch in flight: a miss on a
		// segment found missing just now is likely the end of the archive.
		ar.ExpectAbsent = pf.Absent(src.Key, name)
	}
	begin := time.Now()
	err = ar.FetchTo(ctx, "wal-fetch", name, dest, bw, sysid, sysidFrom)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && pf != nil {
		pf.Observe(time.Since(begin))
		pf.Served(name)
	}
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, wal.ErrNotFound):
		return true, exitStatus(1)
	}
	var ne *wal.NameError
	if errors.As(err, &ne) {
		return false, a.fetchUsageError(err)
	}
	a.fail(err)
	if ctx.Err() != nil {
		return false, exitStatus(1)
	}
	return false, exitStatus(exitFetchFailed)
}

// serveCached sends a cached segment, checked as it is read; what fails
// the check must not be kept by the client (ResetData).
func serveCached(path, name string, sysid uint64, sysidFrom string, bw *bufio.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	c := wal.CheckReader(name, f)
	if _, err := io.Copy(bw, c); err != nil {
		return err
	}
	if h, ok := c.Header(); ok && sysidFrom != "" && h.SysID != sysid {
		return &wal.SystemIDError{Name: name, Got: h.SysID, Want: sysid, ControlDir: sysidFrom}
	}
	return bw.Flush()
}

// serveCachedFile checks a cached segment as serveCached does (its
// header and size: CheckReader reads no more), then hands the client an
// open descriptor of it: the client links or copies the file itself, as
// cp would, instead of receiving its bytes.
func serveCachedFile(ctx context.Context, path, name string, sysid uint64, sysidFrom string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := wal.CheckOpenSegment(name, f)
	if err != nil {
		return err
	}
	if sysidFrom != "" && wal.Classify(name) == wal.KindSegment && h.SysID != sysid {
		return &wal.SystemIDError{Name: name, Got: h.SysID, Want: sysid, ControlDir: sysidFrom}
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return server.SendFile(ctx, f, fi.Size())
}

// prefetchSource fetches with the configuration in force when replay
// asked, logging to the agent's log destinations only, as a detached
// wal-prefetch did.
func (w *agentWAL) prefetchSource(cur *config.Settings, a *app, key string, sysid uint64, sysidFrom string) agent.PrefetchSource {
	return agent.PrefetchSource{
		Key: key,
		Fetch: func(ctx context.Context, seg string, out io.Writer) error {
			pa := &app{settings: a.settings, flags: a.flags, stdout: io.Discard, stderr: io.Discard}
			pa.log = pa.newLogger(a.settings)
			defer pa.log.Close()
			ar, err := w.archive(cur, pa)
			if err != nil {
				return err
			}
			return ar.FetchTo(ctx, "wal-prefetch", seg, seg, out, sysid, sysidFrom)
		},
		NotFound: func(err error) bool { return errors.Is(err, wal.ErrNotFound) },
	}
}

// backupLabelStart is the segment a recovery from a base backup starts
// at, as the backup_label file at path names it ("START WAL LOCATION:
// 0/A000028 (file 00000001000000000000000A)"); "" when there is no such
// file or it names no segment.
func backupLabelStart(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10)) // a few hundred bytes when real
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "START WAL LOCATION: ")
		if !ok {
			continue
		}
		_, name, ok := strings.Cut(rest, "(file ")
		name, _, closed := strings.Cut(name, ")")
		if ok && closed && wal.Classify(name) == wal.KindSegment {
			return name
		}
		return ""
	}
	return ""
}
