package progress

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// terminal is a real pseudo-terminal: tty is the side a program writes to,
// and everything that reaches the screen is collected from the other side.
type terminal struct {
	tty  *os.File
	ptmx *os.File
	out  bytes.Buffer
	done chan struct{}
}

func newTerminal(t *testing.T) *terminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 120}); err != nil {
		t.Fatalf("pty size: %v", err)
	}
	term := &terminal{tty: tty, ptmx: ptmx, done: make(chan struct{})}
	go func() {
		defer close(term.done)
		_, _ = io.Copy(&term.out, ptmx) // ends with EIO once tty is closed
	}()
	t.Cleanup(func() { tty.Close(); ptmx.Close() })
	return term
}

// screen closes the writing side and returns all that was written.
func (term *terminal) screen(t *testing.T) string {
	t.Helper()
	term.tty.Close()
	select {
	case <-term.done:
	case <-time.After(5 * time.Second):
		t.Fatal("pty output did not end")
	}
	return term.out.String()
}

// feed adds total bytes from four goroutines over about d.
func feed(b *Bar, total int64, d time.Duration) {
	const workers, steps = 4, 20
	per := total / workers / steps
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range steps {
				b.Add(per)
				time.Sleep(d / steps)
			}
		}()
	}
	wg.Wait()
	b.Add(total - per*workers*steps)
}

var (
	partialFrame = regexp.MustCompile(`\s[1-9]?[0-9]% \[[=>.]+\]`)
	etaFrame     = regexp.MustCompile(`\[\d+s:\d+s\]`)
	finalFrame   = regexp.MustCompile(`100% \[=+\]`)
)

func TestBarOnTerminalDrawsPercentRateETAAndFinal100PercentFrame(t *testing.T) {
	term := newTerminal(t)
	const total = 64 << 20
	b := New(term.tty, Options{Total: total, Label: "backup-push"})
	if !b.Drawing() {
		t.Fatal("bar does not draw on a pseudo-terminal")
	}
	feed(b, total, 1200*time.Millisecond)
	sum := b.Finish()
	out := term.screen(t)

	if !partialFrame.MatchString(out) {
		t.Errorf("no frame below 100%% in %q", out)
	}
	if !etaFrame.MatchString(out) {
		t.Errorf("no [elapsed:ETA] in %q", out)
	}
	if !strings.Contains(out, "/64 MiB") || !strings.Contains(out, "MiB/s") {
		t.Errorf("no bytes done/total and rate in %q", out)
	}
	if !strings.Contains(out, "\r") {
		t.Errorf("frames are not redrawn in place (no carriage return) in %q", out)
	}
	if !finalFrame.MatchString(out) {
		t.Errorf("no final 100%% frame in %q", out)
	}
	if strings.Count(out, "100%") != 1 {
		t.Errorf("100%% drawn before the end: %q", out)
	}
	if !regexp.MustCompile(`^backup-push: 64 MiB in \d+s, \d+ MiB/s$`).MatchString(sum) {
		t.Errorf("summary %q", sum)
	}
	if !strings.HasSuffix(strings.TrimRight(out, "\r\n"), sum) {
		t.Errorf("output does not end with the summary line %q: %q", sum, out)
	}
}

func TestBarWithUnknownTotalShowsBytesAndRateWithoutPercent(t *testing.T) {
	term := newTerminal(t)
	b := New(term.tty, Options{Label: "backup-fetch"})
	feed(b, 8<<20, 400*time.Millisecond)
	b.SetTotal(64 << 20) // too late: bytes were counted without a total
	sum := b.Finish()
	out := term.screen(t)
	if strings.Contains(out, "%") {
		t.Errorf("percent without a total in %q", out)
	}
	if !regexp.MustCompile(`backup-fetch +\(8\.0 MiB, [0-9.]+ MiB/s\)`).MatchString(out) {
		t.Errorf("no final frame with bytes and rate in %q", out)
	}
	if !strings.HasPrefix(sum, "backup-fetch: 8.0 MiB in ") {
		t.Errorf("summary %q", sum)
	}
}

func TestBarTotalSetLaterAndUnderestimatedTotalStillEndsAt100Percent(t *testing.T) {
	term := newTerminal(t)
	b := New(term.tty, Options{Label: "backup-push"})
	b.SetTotal(4 << 20)
	feed(b, 8<<20, 400*time.Millisecond) // twice the announced total
	b.Finish()
	out := term.screen(t)
	if !regexp.MustCompile(`100% \[=+\] \(8\.0/8\.0 MiB`).MatchString(out) {
		t.Errorf("no final 100%% frame of 8 MiB in %q", out)
	}
	if !strings.Contains(out, "/4.0 MiB") || strings.Count(out, "100%") != 1 {
		t.Errorf("announced total not shown, or 100%% drawn before the end: %q", out)
	}
}

func TestBarOffTerminalWritesNothingAtAll(t *testing.T) {
	var buf bytes.Buffer
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	for _, w := range []io.Writer{&buf, pw} {
		b := New(w, Options{Total: 1 << 20, Label: "backup-push"})
		if b.Drawing() {
			t.Fatalf("bar draws on %T, not a terminal", w)
		}
		feed(b, 1<<20, 300*time.Millisecond)
		if got := b.Finish(); !strings.HasPrefix(got, "backup-push: 1.0 MiB in ") {
			t.Errorf("summary %q", got)
		}
	}
	pw.Close()
	piped, _ := io.ReadAll(pr)
	all := append(buf.Bytes(), piped...)
	if len(all) != 0 {
		t.Errorf("wrote %q off a terminal", all)
	}
	if bytes.ContainsAny(all, "\r\x1b") {
		t.Errorf("carriage return or escape off a terminal: %q", all)
	}
}

func TestBarLogWriterPutsLogLinesOnTheirOwnLineAndTheBarBelow(t *testing.T) {
	term := newTerminal(t)
	b := New(term.tty, Options{Total: 8 << 20, Label: "backup-push"})
	log := b.LogWriter(term.tty)
	feed(b, 4<<20, 300*time.Millisecond)
	io.WriteString(log, "wal_e.worker.upload INFO     MSG: beginning volume compression\n")
	feed(b, 4<<20, 300*time.Millisecond)
	b.Finish()
	out := term.screen(t)
	i := strings.Index(out, "wal_e.worker.upload")
	if i < 0 {
		t.Fatalf("log line missing: %q", out)
	}
	// The frame before it was wiped with blanks back to column 0.
	if !regexp.MustCompile(`\r +\rwal_e\.worker\.upload INFO     MSG: beginning volume compression\r\n`).MatchString(out) {
		t.Errorf("log line not on a cleared line of its own: %q", out)
	}
	if !partialFrame.MatchString(out[i:]) || !finalFrame.MatchString(out[i:]) {
		t.Errorf("bar not drawn again below the log line: %q", out[i:])
	}
	var buf bytes.Buffer
	if w := New(&buf, Options{}).LogWriter(&buf); w != io.Writer(&buf) {
		t.Errorf("off a terminal LogWriter is %T, want the writer itself", w)
	}
}

func TestBarTerseOnTerminalWritesNothing(t *testing.T) {
	term := newTerminal(t)
	b := New(term.tty, Options{Total: 1 << 20, Label: "backup-push", Terse: true})
	feed(b, 1<<20, 200*time.Millisecond)
	b.Finish()
	if out := term.screen(t); out != "" {
		t.Errorf("terse bar wrote %q", out)
	}
}

func TestBarAbortLeavesNoFinalFrameOrSummary(t *testing.T) {
	term := newTerminal(t)
	b := New(term.tty, Options{Total: 64 << 20, Label: "backup-push"})
	feed(b, 16<<20, 400*time.Millisecond)
	b.Abort()
	b.Finish() // after Abort: no effect on the screen
	out := term.screen(t)
	if strings.Contains(out, "100%") || strings.Contains(out, "backup-push: ") {
		t.Errorf("aborted bar shows completion: %q", out)
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("aborted bar does not end its line: %q", out)
	}
}

func TestBarCountsConcurrentAddsAndReadWriteWrappers(t *testing.T) {
	b := New(io.Discard, Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				b.Add(3)
			}
		}()
	}
	wg.Wait()
	if got := b.Done(); got != 24000 {
		t.Fatalf("Done = %d after 8x1000 concurrent Add(3), want 24000", got)
	}
	data := bytes.Repeat([]byte("x"), 10000)
	var sink bytes.Buffer
	if _, err := io.Copy(b.Writer(&sink), b.Reader(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if got := b.Done(); got != 24000+2*10000 {
		t.Errorf("Done = %d after reading and writing 10000 bytes through the wrappers", got)
	}
	if !bytes.Equal(sink.Bytes(), data) {
		t.Error("wrappers changed the data")
	}
	var nilBar *Bar
	nilBar.Add(1) // a caller without a bar passes nil
	if nilBar.Done() != 0 || nilBar.Finish() != "" {
		t.Error("nil bar counted")
	}
}

func TestSummaryReadsLikeBackupPush1GiBIn12s(t *testing.T) {
	b := New(io.Discard, Options{Label: "backup-push"})
	t0 := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	b.start = t0
	b.now = func() time.Time { return t0.Add(12 * time.Second) }
	b.Add(1 << 30)
	if got, want := b.Finish(), "backup-push: 1.0 GiB in 12s, 85 MiB/s"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

func TestBytesAndDurationFormats(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		85 << 20: "85 MiB", 1 << 30: "1.0 GiB", 5 << 40: "5.0 TiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{850 * time.Millisecond: "850ms", 12 * time.Second: "12s",
		59600 * time.Millisecond: "1m00s", 185 * time.Second: "3m05s", 124 * time.Minute: "2h04m"} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
}

// The helper process below writes a bar to its own stderr; the test runs it
// with stderr on a pseudo-terminal, as an operator's shell would.
const helperEnv = "WALDEN_PROGRESS_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		b := New(os.Stderr, Options{Total: 8 << 20, Label: "backup-push"})
		for range 8 {
			b.Add(1 << 20)
			time.Sleep(50 * time.Millisecond)
		}
		b.Finish()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestBarDrawsWhenStderrOfAProcessIsATerminalOnly(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// stderr on a terminal: the bar draws.
	term := newTerminal(t)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = term.tty
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	out := term.screen(t)
	if !finalFrame.MatchString(out) || !strings.Contains(out, "backup-push: 8.0 MiB in ") {
		t.Errorf("stderr on a terminal: no bar and summary in %q", out)
	}
	// stderr redirected to a pipe: nothing at all.
	cmd = exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr redirected: wrote %q", errOut.String())
	}
}
