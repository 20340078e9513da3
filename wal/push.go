package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// MissingFileError is the named WAL file not existing; WAL-E printed the OS
// error on stdout and exited 1.
type MissingFileError struct{ Path string }

func (e *MissingFileError) Error() string {
	return fmt.Sprintf("[Errno 2] No such file or directory: '%s'", e.Path)
}

// ConflictError means the store already holds different content under the
// segment's name: two primaries writing one timeline must not overwrite history.
type ConflictError struct{ URL string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("refusing to overwrite %s: the store already holds different content for this WAL file", e.URL)
}

type pushJob struct {
	path     string
	explicit bool
}

// Push archives the WAL file at path (archive_command's %p) and, when pool
// > 1, up to pool-1 other segments whose .ready status files wait in
// archive_status. Another segment is marked .done only after its own upload
// completed; the named one is left for PostgreSQL to mark.
func (a *Archive) Push(ctx context.Context, path string, pool int) error {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &MissingFileError{Path: path}
		}
		return fmt.Errorf("wal-push %s: %w", path, err)
	}
	jobs := []pushJob{{path: path, explicit: true}}
	if pool > 1 && Classify(filepath.Base(path)) == KindSegment {
		jobs = append(jobs, a.readySegments(path, pool-1)...)
	}
	for _, j := range jobs {
		name := filepath.Base(j.path)
		key := Dir + name + a.Format.Ext()
		url := a.Prefix.PushURL(key)
		a.Log.Info(walelog.Upload, "begin archiving a file",
			fmt.Sprintf("Uploading %q to %q.", j.path, url), "",
			a.fields("push-wal", url, name, walelog.F("state", "begin"))...)
	}
	workers := a.Workers
	if workers < 1 {
		workers = 1
	}
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		wg.Add(1)
		go func(i int, j pushJob) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = a.pushOne(ctx, j)
		}(i, j)
	}
	wg.Wait()
	// The exit status answers for the requested file only: another
	// segment's failure is logged, and its .ready stays for PostgreSQL to
	// hand it to wal-push again.
	for i, err := range errs[1:] {
		if err != nil {
			name := filepath.Base(jobs[i+1].path)
			a.Log.Warn(walelog.Upload, "could not archive a parallel segment",
				fmt.Sprintf("%s: %s", name, oneLine(err.Error())),
				"Its .ready status file stays; PostgreSQL will archive it again.",
				a.fields("push-wal", a.Prefix.PushURL(Dir+name+a.Format.Ext()), name, walelog.F("state", "failed"))...)
		}
	}
	return errs[0]
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// InvalidSegmentError means a file named like a segment is not one
// (truncated, empty, another segment's or non-WAL content): archiving it
// would store garbage under the name and refuse the real segment later.
type InvalidSegmentError struct {
	Path string
	Err  error
}

func (e *InvalidSegmentError) Error() string {
	return fmt.Sprintf("wal-push: refusing to archive %s: %v; nothing was stored", e.Path, e.Err)
}

func (e *InvalidSegmentError) Unwrap() error { return e.Err }

// readySegments lists other plain segments waiting in archive_status, oldest
// first. A missing archive_status directory just means none (WAL-E crashed).
func (a *Archive) readySegments(path string, max int) []pushJob {
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(filepath.Join(dir, "archive_status"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".ready") && Classify(strings.TrimSuffix(n, ".ready")) == KindSegment {
			names = append(names, strings.TrimSuffix(n, ".ready"))
		}
	}
	sort.Strings(names)
	var out []pushJob
	for _, n := range names {
		if len(out) >= max {
			break
		}
		p := filepath.Join(dir, n)
		if p == filepath.Clean(path) || filepath.Base(path) == n {
			continue
		}
		out = append(out, pushJob{path: p})
	}
	return out
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (a *Archive) pushOne(ctx context.Context, j pushJob) error {
	name := filepath.Base(j.path)
	key := Dir + name + a.Format.Ext()
	url := a.Prefix.PushURL(key)
	f, err := os.Open(j.path)
	if err != nil {
		if !j.explicit && errors.Is(err, fs.ErrNotExist) {
			a.Log.Info(walelog.Upload, "skip parallel archiving of a file",
				fmt.Sprintf("The segment %s did not exist.", j.path), "",
				a.fields("push-wal", url, name, walelog.F("state", "skip"))...)
			return a.markDone(j.path)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return &MissingFileError{Path: j.path}
		}
		return fmt.Errorf("wal-push: read %s: %w", j.path, err)
	}
	defer f.Close()
	isSeg := Classify(name) == KindSegment
	existing, found, err := a.locate(ctx, name)
	if err != nil {
		return fmt.Errorf("wal-push %s: looking for an existing copy: %w", name, err)
	}
	start := time.Now()
	var sent int64
	if found {
		if err := a.sameAsStored(ctx, j.path, f, existing, isSeg); err != nil {
			return err
		}
		url = a.Prefix.PushURL(existing)
	} else {
		// Streamed from the file into the compressor, checked on the way:
		// no 16 MiB copy of the segment; the compressed object is buffered
		// so that the store knows its size and can retry it.
		buf := bufPool.Get().(*bytes.Buffer)
		buf.Reset()
		defer bufPool.Put(buf)
		w, err := a.Format.NewWriter(buf)
		if err != nil {
			return fmt.Errorf("wal-push %s: %w", name, err)
		}
		var src io.Reader = f
		if isSeg {
			src = CheckReader(name, f)
		}
		if _, err := io.Copy(w, src); err != nil {
			w.Close()
			if IsHeaderError(err) {
				return &InvalidSegmentError{Path: j.path, Err: err}
			}
			return fmt.Errorf("wal-push %s: compress: %w", name, err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("wal-push %s: compress: %w", name, err)
		}
		sent = int64(buf.Len())
		start = time.Now()
		// Create-if-absent: of two pushes of one name racing, exactly one
		// stores; the other compares, so different content is never
		// silently replaced.
		err = a.Store.Put(ctx, key, bytes.NewReader(buf.Bytes()), sent, storage.PutOptions{IfAbsent: true})
		if storage.IsExists(err) {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("wal-push: read %s: %w", j.path, err)
			}
			if err := a.sameAsStored(ctx, j.path, f, key, isSeg); err != nil {
				return err
			}
			sent = 0
		} else if err != nil {
			return fmt.Errorf("wal-push %s: upload to %s: %w", name, url, err)
		}
	}
	rate := walelog.FormatRate(sent, time.Since(start))
	a.Log.Info(walelog.Upload, "completed archiving to a file",
		fmt.Sprintf("Archiving to %q complete at %sKiB/s.", url, rate), "",
		a.fields("push-wal", url, name, walelog.F("rate", rate), walelog.F("state", "complete"))...)
	if !j.explicit {
		return a.markDone(j.path)
	}
	return nil
}

// sameAsStored succeeds when the stored object key holds exactly the
// content of the local file, and is a ConflictError when it differs.
func (a *Archive) sameAsStored(ctx context.Context, path string, f io.Reader, key string, isSeg bool) error {
	name := filepath.Base(path)
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("wal-push: read %s: %w", path, err)
	}
	if isSeg {
		if _, err := CheckSegmentFile(name, data); err != nil {
			return &InvalidSegmentError{Path: path, Err: err}
		}
	}
	same, err := a.sameContent(ctx, key, data)
	if err != nil {
		return fmt.Errorf("wal-push %s: comparing with the stored copy %s: %w", name, a.Prefix.URL(key), err)
	}
	if !same {
		return &ConflictError{URL: a.Prefix.URL(key)}
	}
	return nil
}

func (a *Archive) sameContent(ctx context.Context, key string, data []byte) (bool, error) {
	rc, err := a.Store.Get(ctx, key)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	dec, err := blob.NewReader(key, rc, a.Crypt)
	if err != nil {
		return false, err
	}
	defer dec.Close()
	got, err := io.ReadAll(io.LimitReader(dec, int64(len(data))+1))
	if err != nil {
		return false, err
	}
	return bytes.Equal(got, data), nil
}

func (a *Archive) markDone(path string) error {
	dir, name := filepath.Split(path)
	st := filepath.Join(dir, "archive_status", name)
	if err := os.Rename(st+".ready", st+".done"); err != nil {
		return &walelog.UserError{Msg: "problem moving .ready archive status to .done", Detail: "Traceback is: " + err.Error(), Hint: "report a bug", Critical: true}
	}
	return nil
}
