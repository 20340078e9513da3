package progress

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

// clock is a test clock the Replay reads through its now field.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func seg(n int) string { return fmt.Sprintf("00000001000000%02X000000%02X", n/256, n%256) }

func TestParseLSN(t *testing.T) {
	l, err := ParseLSN("1/12000028")
	if err != nil || l != 0x1_12000028 || l.String() != "1/12000028" {
		t.Errorf("ParseLSN(1/12000028) = %v (%s), %v", uint64(l), l, err)
	}
	for _, bad := range []string{"", "12000028", "1/", "x/1", "1/123456789"} {
		if _, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) accepted", bad)
		}
	}
}

func TestReplayLineCountsSegmentsRateAndETAAgainstTargetSegment(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)}
	var buf bytes.Buffer
	r := NewReplay(&buf, ReplayOptions{Label: "recovery", Target: Target{Segment: seg(0x140)}})
	r.now, r.start = c.now, c.t
	r.Update(Position{Segment: seg(0x100)})
	c.t = c.t.Add(10 * time.Second)
	lsn, _ := ParseLSN("1/20000028")
	tx := time.Date(2026, 12, 6, 23, 59, 58, 0, time.UTC)
	r.Update(Position{Segment: seg(0x120), LSN: lsn, LastTx: tx})
	want := "recovery: replayed 000000010000000100000020 (LSN 1/20000028, last transaction 2026-12-06 23:59:58 UTC)" +
		", target 000000010000000100000040: 32 of 64 segments (50%), 3.2 segments/s, ETA 10s"
	if got := r.Line(); got != want {
		t.Errorf("Line()\n got %q\nwant %q", got, want)
	}
	c.t = c.t.Add(10 * time.Second)
	r.Update(Position{Segment: seg(0x140)})
	if got := r.Line(); !strings.HasSuffix(got, "64 of 64 segments (100%), 3.2 segments/s, ETA 0s") {
		t.Errorf("at the target: %q", got)
	}
	if got, want := r.Finish(), "recovery: 64 segments in 20s, 3.2 segments/s"; got != want {
		t.Errorf("Finish() = %q, want %q", got, want)
	}
	if buf.Len() != 0 {
		t.Errorf("replay wrote %q off a terminal", buf.String())
	}
}

func TestReplayLineUsesTargetLSNAndLSNPositionsWithoutSegmentNames(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)}
	target, _ := ParseLSN("0/A000000") // segment 10
	r := NewReplay(&bytes.Buffer{}, ReplayOptions{Target: Target{LSN: target}})
	r.now = c.now
	r.Update(Position{LSN: 0x2000028}) // segment 2
	c.t = c.t.Add(4 * time.Second)
	r.Update(Position{LSN: 0x6000000}) // segment 6
	want := "replayed (LSN 0/6000000), target LSN 0/A000000: 4 of 8 segments (50%), 1.0 segments/s, ETA 4s"
	if got := r.Line(); got != want {
		t.Errorf("Line()\n got %q\nwant %q", got, want)
	}
}

func TestReplayLineWithOnlyATargetTimeMeasuresTransactionTime(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)}
	tx0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	r := NewReplay(&bytes.Buffer{}, ReplayOptions{Label: "recovery", Target: Target{Time: tx0.Add(time.Hour)}})
	r.now = c.now
	r.Update(Position{LastTx: tx0})
	c.t = c.t.Add(30 * time.Second)
	r.Update(Position{Segment: seg(7), LastTx: tx0.Add(15 * time.Minute)})
	got := r.Line()
	want := "recovery: replayed 000000010000000000000007 (last transaction 2026-12-07 10:15:00 UTC)" +
		", target time 2026-12-07 11:00:00 UTC: 15m00s of 1h00m of transactions (25%), ETA 1m30s"
	if got != want {
		t.Errorf("Line()\n got %q\nwant %q", got, want)
	}
}

func TestReplayLineBeforeAnyPositionAndWithoutTarget(t *testing.T) {
	r := NewReplay(&bytes.Buffer{}, ReplayOptions{Label: "recovery"})
	if got := r.Line(); got != "recovery: waiting for the first replayed segment" {
		t.Errorf("before any update: %q", got)
	}
	r.Update(Position{Segment: seg(3)})
	if got := r.Line(); got != "recovery: replayed 000000010000000000000003" {
		t.Errorf("without a target: %q", got)
	}
}

func TestReplayOnTerminalDrawsBarWithSegmentRateAndFinal100PercentFrame(t *testing.T) {
	term := newTerminal(t)
	r := NewReplay(term.tty, ReplayOptions{Label: "recovery", Target: Target{Segment: seg(40)}})
	for i := 0; i <= 40; i += 4 {
		r.Update(Position{Segment: seg(i)})
		time.Sleep(120 * time.Millisecond)
	}
	sum := r.Finish()
	out := term.screen(t)
	if !regexp.MustCompile(`recovery 000000010000000000000014 +[1-9][0-9]% \[[=>.]+\] \(20/40, [0-9]+ segments/s\) \[\d+s:\d+s\]`).MatchString(out) {
		t.Errorf("no frame at segment 20 of 40 with rate and ETA in %q", out)
	}
	if !finalFrame.MatchString(out) || strings.Count(out, "100%") != 1 {
		t.Errorf("no single final 100%% frame in %q", out)
	}
	if !regexp.MustCompile(`^recovery: 40 segments in \d+m?s, [0-9.]+ segments/s$`).MatchString(sum) ||
		!strings.HasSuffix(strings.TrimRight(out, "\r\n"), sum) {
		t.Errorf("summary %q not last in %q", sum, out)
	}
}

func TestReplayTerseOnTerminalWritesNothing(t *testing.T) {
	term := newTerminal(t)
	r := NewReplay(term.tty, ReplayOptions{Terse: true, Target: Target{Segment: seg(4)}})
	r.Update(Position{Segment: seg(0)})
	r.Update(Position{Segment: seg(4)})
	r.Finish()
	if out := term.screen(t); out != "" {
		t.Errorf("terse replay wrote %q", out)
	}
}

func TestReplayDrawsAtMostTenFramesASecondUnderAFloodOfUpdates(t *testing.T) {
	term := newTerminal(t)
	r := NewReplay(term.tty, ReplayOptions{Label: "recovery", Target: Target{Segment: seg(2000)}})
	t0 := time.Now()
	for i := 0; i <= 2000; i++ {
		r.Update(Position{Segment: seg(i)})
	}
	elapsed := time.Since(t0)
	r.Finish()
	out := term.screen(t)
	frames := strings.Count(out, "% [")
	// Each drawn update writes two frames (count, then description).
	if limit := 2*int(elapsed/(100*time.Millisecond)) + 6; frames > limit {
		t.Errorf("%d frames for 2001 updates in %v (limit %d)", frames, elapsed, limit)
	}
	if !regexp.MustCompile(`recovery 0000000100000007000000D0 +100% \[=+\]`).MatchString(out) {
		t.Errorf("final frame does not show the last segment replayed: %q", out)
	}
}

func TestReplayLogWriterPutsLogLinesOnTheirOwnLine(t *testing.T) {
	term := newTerminal(t)
	r := NewReplay(term.tty, ReplayOptions{Label: "recovery", Target: Target{Segment: seg(8)}})
	log := r.LogWriter(term.tty)
	r.Update(Position{Segment: seg(0)})
	r.Update(Position{Segment: seg(2)})
	io.WriteString(log, "LOG:  restored log file \"000000010000000000000002\" from archive\n")
	r.Update(Position{Segment: seg(4)})
	r.Finish()
	out := term.screen(t)
	i := strings.Index(out, "LOG:  restored")
	if i < 0 || !regexp.MustCompile(`\r +\rLOG:  restored log file "000000010000000000000002" from archive\r\n`).MatchString(out) {
		t.Fatalf("log line not on a cleared line of its own: %q", out)
	}
	if !regexp.MustCompile(`recovery 000000010000000000000004 +50% `).MatchString(out[i:]) {
		t.Errorf("bar not drawn again below the log line: %q", out[i:])
	}
	var buf bytes.Buffer
	if w := NewReplay(&buf, ReplayOptions{}).LogWriter(&buf); w != io.Writer(&buf) {
		t.Errorf("off a terminal LogWriter is %T, want the writer itself", w)
	}
}
