package progress

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// DefaultSegmentSize is PostgreSQL's default WAL segment size.
const DefaultSegmentSize = 16 << 20

// LSN is a PostgreSQL WAL location.
type LSN uint64

// ParseLSN reads PostgreSQL's "X/Y" notation, as pg_last_wal_replay_lsn()
// prints it.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if ok {
		h, err1 := strconv.ParseUint(hi, 16, 32)
		l, err2 := strconv.ParseUint(lo, 16, 32)
		if err1 == nil && err2 == nil {
			return LSN(h<<32 | l), nil
		}
	}
	return 0, fmt.Errorf("invalid LSN %q (want X/Y in hexadecimal)", s)
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }

// Position is how far recovery has replayed. Any field may be unknown
// (empty or zero).
type Position struct {
	Segment string    // WAL file name of the last segment replayed
	LSN     LSN       // last replayed location
	LastTx  time.Time // commit time of the last replayed transaction
}

// Target is where recovery stops: the newest archived segment, a target
// LSN, or a target time. Segment or LSN make the bar count segments;
// with only Time it counts transaction time.
type Target struct {
	Segment string
	LSN     LSN
	Time    time.Time
}

// ReplayOptions configure a Replay.
type ReplayOptions struct {
	Label       string // e.g. "recovery"
	Terse       bool
	Target      Target
	SegmentSize int64 // 0: DefaultSegmentSize
}

// Replay follows recovery: on a terminal as a bar, elsewhere through Line,
// which the caller logs periodically. Safe for concurrent use.
type Replay struct {
	label  string
	w      io.Writer
	segSz  int64
	now    func() time.Time
	start  time.Time
	pbOpts []progressbar.Option

	mu      sync.Mutex
	target  Target
	first   Position // first update: where counting starts
	firstAt time.Time
	pos     Position
	posAt   time.Time
	seen    bool
	ended   bool
	pb      *progressbar.ProgressBar
	pbMax   int64
	drawn   time.Time // when the last frame was drawn
}

// NewReplay starts following recovery, drawing on w when it is a terminal.
func NewReplay(w io.Writer, o ReplayOptions) *Replay {
	r := &Replay{label: o.Label, w: w, segSz: o.SegmentSize, now: time.Now, target: o.Target}
	if r.segSz <= 0 {
		r.segSz = DefaultSegmentSize
	}
	r.start = r.now()
	if o.Terse || !IsTerminal(w) {
		return r
	}
	desc := ""
	if o.Label != "" {
		desc = o.Label + " "
	}
	r.pbOpts = []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionFullWidth(),
		progressbar.OptionSetTheme(progressbar.ThemeASCII),
		progressbar.OptionSetSpinnerChangeInterval(0),
	}
	return r
}

// SetTarget changes the target, e.g. as newer segments are archived.
func (r *Replay) SetTarget(t Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target = t
	r.draw()
}

// Update records the newest replay position.
func (r *Replay) Update(p Position) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if !r.seen {
		r.first, r.firstAt, r.seen = p, now, true
	}
	r.pos, r.posAt = p, now
	r.draw()
}

// segNo is the segment number of a WAL file name or, failing that, of an
// LSN; ok is false when neither is known.
func (r *Replay) segNo(name string, lsn LSN) (int64, bool) {
	if len(name) >= 24 {
		log, err1 := strconv.ParseUint(name[8:16], 16, 32)
		seg, err2 := strconv.ParseUint(name[16:24], 16, 32)
		if err1 == nil && err2 == nil {
			return int64(log)*(0x100000000/r.segSz) + int64(seg), true
		}
	}
	if lsn != 0 {
		return int64(uint64(lsn) / uint64(r.segSz)), true
	}
	return 0, false
}

// state is the progress in one unit: segments, or seconds of transaction
// time when only a target time is known.
type state struct {
	bySegment  bool
	done, todo int64 // units replayed since the first update, units left
	rate       float64
	eta        time.Duration
	known      bool
}

func (r *Replay) state() state {
	var s state
	if !r.seen {
		return s
	}
	elapsed := r.posAt.Sub(r.firstAt).Seconds()
	if tgt, ok := r.segNo(r.target.Segment, r.target.LSN); ok {
		first, ok1 := r.segNo(r.first.Segment, r.first.LSN)
		pos, ok2 := r.segNo(r.pos.Segment, r.pos.LSN)
		if !ok1 || !ok2 {
			return s
		}
		s.bySegment, s.known = true, true
		s.done, s.todo = pos-first, max(tgt-pos, 0)
	} else if !r.target.Time.IsZero() && !r.first.LastTx.IsZero() && !r.pos.LastTx.IsZero() {
		s.known = true
		s.done = int64(r.pos.LastTx.Sub(r.first.LastTx).Seconds())
		s.todo = max(int64(r.target.Time.Sub(r.pos.LastTx).Seconds()), 0)
	} else {
		return s
	}
	if elapsed > 0 && s.done > 0 {
		s.rate = float64(s.done) / elapsed
		s.eta = time.Duration(float64(s.todo) / s.rate * float64(time.Second))
	}
	return s
}

// draw brings the bar up to date; r.mu is held.
func (r *Replay) draw() {
	if r.pbOpts == nil || r.ended {
		return
	}
	// Updates may come per segment, hundreds a second: draw at most ten
	// frames a second (the library's own throttle would drop the frame
	// after a description change).
	now := r.now()
	if now.Sub(r.drawn) < 100*time.Millisecond && now.After(r.drawn) {
		return
	}
	r.drawn = now
	s := r.state()
	if !s.known {
		return
	}
	total := s.done + s.todo
	if total <= 0 {
		total = 1
	}
	if r.pb == nil {
		opts := append([]progressbar.Option{}, r.pbOpts...)
		if s.bySegment {
			opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("segments"))
		}
		r.pb = progressbar.NewOptions64(total, opts...)
		r.pbMax = total
	}
	if total != r.pbMax {
		r.pb.ChangeMax64(total)
		r.pbMax = total
	}
	// Finish draws the final frame; until then stay short of 100%.
	_ = r.pb.Set64(min(max(s.done, 0), total-1))
	r.pb.Describe(r.desc())
}

// desc starts a frame: the label and where replay is.
func (r *Replay) desc() string {
	desc := ""
	if r.label != "" {
		desc = r.label + " "
	}
	if r.pos.Segment != "" {
		desc += r.pos.Segment + " "
	} else if r.pos.LSN != 0 {
		desc += r.pos.LSN.String() + " "
	}
	return desc
}

// LogWriter returns a writer for the caller's log lines while the bar is
// on the same terminal: each write first clears the bar's line, and the
// next update draws the bar again below it. Off a terminal it is w itself.
func (r *Replay) LogWriter(w io.Writer) io.Writer {
	if r.pbOpts == nil {
		return w
	}
	return &replayLogWriter{w: w, r: r}
}

type replayLogWriter struct {
	w io.Writer
	r *Replay
}

func (l *replayLogWriter) Write(p []byte) (int, error) {
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	if l.r.pb != nil && !l.r.ended {
		_ = l.r.pb.Clear()
		l.r.drawn = time.Time{} // redraw at the next update
	}
	return l.w.Write(p)
}

// Line is the progress as one log line, e.g. "recovery: replayed
// 000000010000000000000012 (LSN 0/12000028, last transaction
// 2026-12-07 15:04:05 UTC), target 000000010000000000000040: 18 of 64
// segments (28%), 3.2 segments/s, ETA 14s".
func (r *Replay) Line() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	if r.label != "" {
		b.WriteString(r.label + ": ")
	}
	if !r.seen {
		b.WriteString("waiting for the first replayed segment")
		return b.String()
	}
	b.WriteString("replayed")
	if r.pos.Segment != "" {
		b.WriteString(" " + r.pos.Segment)
	}
	var detail []string
	if r.pos.LSN != 0 {
		detail = append(detail, "LSN "+r.pos.LSN.String())
	}
	if !r.pos.LastTx.IsZero() {
		detail = append(detail, "last transaction "+stamp(r.pos.LastTx))
	}
	if len(detail) > 0 {
		b.WriteString(" (" + strings.Join(detail, ", ") + ")")
	}
	switch {
	case r.target.Segment != "":
		b.WriteString(", target " + r.target.Segment)
	case r.target.LSN != 0:
		b.WriteString(", target LSN " + r.target.LSN.String())
	case !r.target.Time.IsZero():
		b.WriteString(", target time " + stamp(r.target.Time))
	}
	s := r.state()
	if !s.known {
		return b.String()
	}
	total := s.done + s.todo
	pct := 100
	if total > 0 {
		pct = int(s.done * 100 / total)
	}
	if s.bySegment {
		fmt.Fprintf(&b, ": %d of %d segments (%d%%)", s.done, total, pct)
		fmt.Fprintf(&b, ", %.1f segments/s", s.rate)
	} else {
		fmt.Fprintf(&b, ": %s of %s of transactions (%d%%)",
			Duration(time.Duration(s.done)*time.Second), Duration(time.Duration(total)*time.Second), pct)
	}
	if s.todo == 0 {
		b.WriteString(", ETA 0s")
	} else if s.rate > 0 {
		b.WriteString(", ETA " + Duration(s.eta))
	} else {
		b.WriteString(", ETA unknown")
	}
	return b.String()
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// Finish ends a completed recovery: on a terminal the final 100% frame and
// a summary line. It returns the summary, e.g. "recovery: 64 segments in
// 20s, 3.2 segments/s".
func (r *Replay) Finish() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state()
	d := r.now().Sub(r.start)
	sum := fmt.Sprintf("%d segments in %s", s.done, Duration(d))
	if s.bySegment && d > 0 {
		sum += fmt.Sprintf(", %.1f segments/s", float64(s.done)/d.Seconds())
	} else if !s.bySegment {
		sum = "replayed " + Duration(time.Duration(s.done)*time.Second) + " of transactions in " + Duration(d)
	}
	if r.label != "" {
		sum = r.label + ": " + sum
	}
	if !r.ended {
		r.ended = true
		if r.pb != nil {
			// The last updates may not have been drawn (at most ten
			// frames a second): the final frame shows the last one.
			r.pb.Describe(r.desc())
			_ = r.pb.Finish()
			fmt.Fprintf(r.w, "\n%s\n", sum)
		}
	}
	return sum
}

// Abort ends a failed recovery, leaving the last frame and a new line.
func (r *Replay) Abort() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.ended = true
	if r.pb != nil {
		_ = r.pb.Exit()
		fmt.Fprintln(r.w)
	}
}
