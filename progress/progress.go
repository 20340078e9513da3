// Package progress draws progress bars on a terminal for long transfers
// (backup-push, backup-fetch) and for recovery replay.
//
// A bar draws only when its writer is a terminal and the caller is not
// terse. Anywhere else it draws nothing, so redirected stderr stays free of
// carriage returns and escape codes; the caller keeps logging its periodic
// records there. Counting works the same either way, so callers can always
// read Done and Summary.
//
// A transfer uses it as
//
//	bar := progress.New(os.Stderr, progress.Options{Total: size, Label: "backup-push", Terse: terse})
//	defer bar.Abort() // no effect after Finish
//	... io.Copy(dst, bar.Reader(src)) in each worker, or bar.Add(n) ...
//	logger.Info(bar.Finish())
//
// with its log records written through bar.LogWriter(os.Stderr) so that
// they do not land in the middle of a frame.
package progress

import (
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// refresh is how often the drawing goroutine redraws the bar. Add only
// counts, so the hot path of a transfer never waits for the terminal.
const refresh = 150 * time.Millisecond

// Options configure a Bar.
type Options struct {
	// Total is the expected number of bytes; 0 or less when unknown (the
	// bar then shows bytes and rate without percent until SetTotal).
	Total int64
	// Label starts the bar and the summary line, e.g. "backup-push".
	Label string
	// Terse turns drawing off, as for WAL-E's --terse.
	Terse bool
}

// Bar counts bytes of one transfer and, on a terminal, draws them.
// Its methods are safe for concurrent use; a nil *Bar counts nothing.
type Bar struct {
	label string
	w     io.Writer
	start time.Time
	now   func() time.Time

	done  atomic.Int64
	total atomic.Int64

	mu      sync.Mutex               // serializes drawing and log lines
	ended   bool                     // Finish or Abort drew the last frame
	pb      *progressbar.ProgressBar // nil when not drawing
	unknown bool                     // pb was started without a total
	synced  int64                    // bytes last handed to pb
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
	end     time.Time
}

// IsTerminal reports whether w is a terminal, the condition for drawing.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// New starts a bar writing to w, normally os.Stderr.
func New(w io.Writer, o Options) *Bar {
	b := &Bar{label: o.Label, w: w, now: time.Now}
	b.start = b.now()
	if o.Total > 0 {
		b.total.Store(o.Total)
	}
	if o.Terse || !IsTerminal(w) {
		return b
	}
	max := o.Total + 1 // see sync
	if o.Total <= 0 {
		max = -1
	}
	desc := ""
	if o.Label != "" {
		desc = o.Label + " "
	}
	b.pb = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionFullWidth(),
		progressbar.OptionSetTheme(progressbar.ThemeASCII),
		progressbar.OptionSetRenderBlankState(true),
		// No spinner goroutine of the library's own: it would keep
		// drawing after Abort. The refresh ticker drives every frame.
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
	b.unknown = o.Total <= 0
	b.stop = make(chan struct{})
	b.wg.Add(1)
	go b.draw()
	return b
}

func (b *Bar) draw() {
	defer b.wg.Done()
	t := time.NewTicker(refresh)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.sync()
		}
	}
}

// sync hands the counted bytes to the drawing library. The library stops
// advancing its position once it reaches its maximum (which is also when it
// draws its final frame), so until Finish the maximum is kept above what
// was counted, and an underestimated total grows to fit. A bar started
// without a total draws bytes and rate only; it takes a total set before
// any byte was counted (the library's position is meaningless after
// counting without one).
func (b *Bar) sync() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	done := b.done.Load()
	if total := b.total.Load(); total > 0 && (!b.unknown || b.synced == 0) {
		if want := max(total, done+1); want != b.pb.GetMax64() || b.unknown {
			b.pb.ChangeMax64(want)
			b.unknown = false
		}
	}
	_ = b.pb.Set64(done)
	b.synced = done
}

// Add counts n more bytes done.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.done.Add(n)
}

// SetTotal sets the expected number of bytes, when it becomes known.
func (b *Bar) SetTotal(n int64) {
	if b == nil {
		return
	}
	if n < 0 {
		n = 0
	}
	b.total.Store(n)
}

// Done is the number of bytes counted so far.
func (b *Bar) Done() int64 {
	if b == nil {
		return 0
	}
	return b.done.Load()
}

// Total is the expected number of bytes (0: unknown).
func (b *Bar) Total() int64 {
	if b == nil {
		return 0
	}
	return b.total.Load()
}

// Drawing reports whether the bar draws on its writer.
func (b *Bar) Drawing() bool { return b != nil && b.pb != nil }

// Reader returns a reader that counts what is read through it.
func (b *Bar) Reader(r io.Reader) io.Reader { return &countReader{r: r, b: b} }

// Writer returns a writer that counts what is written through it.
func (b *Bar) Writer(w io.Writer) io.Writer { return &countWriter{w: w, b: b} }

type countReader struct {
	r io.Reader
	b *Bar
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.b.Add(int64(n))
	return n, err
}

type countWriter struct {
	w io.Writer
	b *Bar
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.b.Add(int64(n))
	return n, err
}

// LogWriter returns a writer for the caller's log lines while the bar is
// on the same terminal: each write first clears the bar's line, and the
// next refresh draws the bar again below the log line. Off a terminal it
// is w itself.
func (b *Bar) LogWriter(w io.Writer) io.Writer {
	if !b.Drawing() {
		return w
	}
	return &logWriter{w: w, b: b}
}

type logWriter struct {
	w io.Writer
	b *Bar
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	if !l.b.ended {
		_ = l.b.pb.Clear()
	}
	return l.w.Write(p)
}

// Finish ends a successful transfer: on a terminal it draws the final 100%
// frame and the summary line. It returns the summary (for the caller's log
// off a terminal). Only the first Finish or Abort has an effect.
func (b *Bar) Finish() string {
	if b == nil {
		return ""
	}
	b.once.Do(func() {
		b.end = b.now()
		if b.pb == nil {
			return
		}
		b.halt()
		b.mu.Lock()
		defer b.mu.Unlock()
		b.ended = true
		// The transfer is complete, so what was counted is the total:
		// reaching it draws the final 100% frame.
		if done := b.done.Load(); done > 0 && !b.unknown {
			b.pb.ChangeMax64(done)
		} else {
			_ = b.pb.Finish()
		}
		fmt.Fprintf(b.w, "\n%s\n", b.summary())
	})
	return b.summary()
}

// Abort ends a failed transfer: the last frame stays as it was and the
// cursor moves to a fresh line for the caller's error message.
func (b *Bar) Abort() {
	if b == nil {
		return
	}
	b.once.Do(func() {
		b.end = b.now()
		if b.pb == nil {
			return
		}
		b.halt()
		b.mu.Lock()
		defer b.mu.Unlock()
		b.ended = true
		_ = b.pb.Exit()
		fmt.Fprintln(b.w)
	})
}

func (b *Bar) halt() {
	close(b.stop)
	b.wg.Wait()
	b.sync()
}

// Summary is one line such as "backup-push: 1.0 GiB in 12s, 85 MiB/s".
func (b *Bar) Summary() string {
	if b == nil {
		return ""
	}
	return b.summary()
}

func (b *Bar) summary() string {
	end := b.end
	if end.IsZero() {
		end = b.now()
	}
	d := end.Sub(b.start)
	done := b.done.Load()
	s := fmt.Sprintf("%s in %s, %s/s", Bytes(done), Duration(d), Bytes(rate(float64(done), d)))
	if b.label != "" {
		s = b.label + ": " + s
	}
	return s
}

func rate(n float64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Round(n / d.Seconds()))
}

// Bytes formats a byte count in IEC units: "512 B", "1.0 GiB", "85 MiB".
// One decimal below 10 units, none above, as a person reads a rate.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	i := -1
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	if v >= unit-0.5 && i < 5 { // would print as "1024"
		v /= unit
		i++
	}
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}[i]
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, suffix)
	}
	return fmt.Sprintf("%.0f %s", v, suffix)
}

// Duration formats d rounded for people: "850ms", "12s", "3m05s", "2h04m".
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d >= time.Second {
		d = d.Round(time.Second)
	}
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}
