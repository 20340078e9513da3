//go:build !walden_wal

package main

import (
	"io"
	"sync"
	"time"

	"github.com/walden-pg/walden/basebackup"
	"github.com/walden-pg/walden/progress"
)

// transfer is the progress bar of one backup-push or backup-fetch. While it
// draws, the app's log records on stderr go through the bar's LogWriter so
// each lands on its own line; off a terminal (or with --terse) nothing
// draws and the log is untouched.
type transfer struct {
	*progress.Bar
	restoreLog func()

	mu   sync.Mutex
	seen int64 // bytes already handed to the bar by pushProgress
}

// startTransfer starts a bar on stderr. total may be 0 when not yet known.
// The caller ends it with finish or abort.
func (a *app) startTransfer(label string, total int64) *transfer {
	t := &transfer{Bar: progress.New(a.stderr, progress.Options{Total: total, Label: label, Terse: a.flags.Terse})}
	t.restoreLog = a.logThrough(t.Bar.Drawing(), t.Bar.LogWriter)
	return t
}

// logThrough replaces a.log, while a bar draws, with a logger writing its
// stderr records through wrap(stderr). The returned function puts the
// original logger back.
func (a *app) logThrough(drawing bool, wrap func(io.Writer) io.Writer) func() {
	if !drawing {
		return func() {}
	}
	oldLog, oldErr := a.log, a.stderr
	a.stderr = wrap(oldErr)
	a.log = a.newLogger(a.settings)
	a.stderr = oldErr
	return func() {
		a.log.Close()
		a.log = oldLog
	}
}

// pushProgress feeds basebackup.Push's progress reports to the bar: the
// walk's total and the bytes read so far.
func (t *transfer) pushProgress(pr basebackup.Progress) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pr.BytesTotal > 0 && t.Total() == 0 {
		t.SetTotal(pr.BytesTotal)
	}
	if d := pr.BytesRead - t.seen; d > 0 {
		t.Add(d)
		t.seen = pr.BytesRead
	}
}

// end finishes the bar (final frame and summary on a terminal) after a
// success, or leaves its last frame after a failure.
func (t *transfer) end(err error) {
	if err != nil {
		t.Abort()
	} else {
		t.Finish()
	}
	t.restoreLog()
}

// progressInterval is how often a progress line is logged off a terminal
// (WALDEN_PROGRESS_INTERVAL, default 30s).
func (a *app) progressInterval() time.Duration {
	if a.settings != nil && a.settings.ProgressInterval > 0 {
		return a.settings.ProgressInterval
	}
	return 30 * time.Second
}
