package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/walden-pg/walden/internal/pgtest"
)

// bbWaldenOnTerminal runs walden as postgres with its stderr on a pseudo
// terminal and returns what it drew there (the terminal's "\r\n" line
// endings turned back into "\n").
func bbWaldenOnTerminal(t *testing.T, bin, envdir string, env []string, args ...string) bbResult {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 160}); err != nil {
		t.Fatalf("pty size: %v", err)
	}
	var screen bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(&screen, ptmx) // ends with EIO once every tty copy is closed
	}()
	cmd := pgtest.Command(t, env, "", bin, append([]string{"--envdir", envdir}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, tty
	err = cmd.Run()
	tty.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output did not end")
	}
	r := bbResult{stdout: out.String(), stderr: strings.ReplaceAll(screen.String(), "\r\n", "\n")}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return r
}

var percentRe = regexp.MustCompile(`\b[0-9]{1,3}%`)

// checkDrawn asserts a terminal run drew a bar with percentages, its final
// 100% frame, and the summary line, and that log records still came out
// on lines of their own.
func checkDrawn(t *testing.T, r bbResult, label, logLine string) {
	t.Helper()
	s := r.stderr
	if !strings.Contains(s, "\r") {
		t.Errorf("%s on a terminal drew no frame (no carriage return):\n%q", label, bbTail(s, 2000))
	}
	if len(percentRe.FindAllString(s, -1)) == 0 || !strings.Contains(s, "100%") {
		t.Errorf("%s on a terminal shows no percent or no final 100%% frame:\n%q", label, bbTail(s, 2000))
	}
	if !regexp.MustCompile(`(?m)^` + label + `: [0-9.]+ (B|KiB|MiB|GiB) in [0-9a-z]+, [0-9.]+ (B|KiB|MiB|GiB)/s$`).MatchString(s) {
		t.Errorf("%s on a terminal printed no summary line:\n%q", label, bbTail(s, 2000))
	}
	if !regexp.MustCompile(`(?m)^wal_e\.|(?m)^walden`).MatchString(s) || !strings.Contains(s, logLine) {
		t.Errorf("%s log records missing or not at the start of a line:\n%q", label, bbTail(s, 3000))
	}
}

// checkPlain asserts a run with stderr on a pipe drew nothing.
func checkPlain(t *testing.T, r bbResult, label string) {
	t.Helper()
	if strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Errorf("%s with stderr on a pipe wrote a carriage return or escape:\n%q", label, bbTail(r.stderr, 2000))
	}
	if strings.Contains(r.stderr, label+": ") && regexp.MustCompile(label+`: [0-9.]+ (B|KiB|MiB|GiB) in`).MatchString(r.stderr) {
		t.Errorf("%s with stderr on a pipe printed the terminal summary", label)
	}
}

// TestProgressBarDrawsOnTerminalOnlyForPushAndFetch runs backup-push and
// backup-fetch of a real cluster with stderr on a pseudo terminal (bar,
// final 100% frame, summary), on a pipe (no carriage return, no escape
// byte) and on a terminal with --terse (no bar).
func TestProgressBarDrawsOnTerminalOnlyForPushAndFetch(t *testing.T) {
	bin := pgtest.BuildWalden(t)
	c, envdir, _ := bbArchivingCluster(t, bin, 5, nil)

	r := bbMust(t, bbWaldenOnTerminal(t, bin, envdir, c.Env(), "backup-push", c.Dir), "backup-push on a terminal")
	checkDrawn(t, r, "backup-push", "MSG: finish uploading a base backup volume")
	m := bbBackupNameRe.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no backup name in:\n%s", bbTail(r.stderr, 2000))
	}
	name := m[1]

	r = bbMust(t, bbWalden(t, bin, envdir, c.Env(), "backup-push", c.Dir), "backup-push on a pipe")
	checkPlain(t, r, "backup-push")
	if !strings.Contains(r.stderr, "MSG: base backup complete") {
		t.Errorf("backup-push on a pipe lost its log:\n%s", bbTail(r.stderr, 2000))
	}

	r = bbMust(t, bbWaldenOnTerminal(t, bin, envdir, c.Env(), "--terse", "backup-push", c.Dir), "backup-push --terse on a terminal")
	if strings.ContainsAny(r.stderr, "\r\x1b") || strings.Contains(r.stderr, "%") {
		t.Errorf("backup-push --terse drew a bar:\n%q", bbTail(r.stderr, 2000))
	}

	dst := bbScratch(t) + "/fetched"
	r = bbMust(t, bbWaldenOnTerminal(t, bin, envdir, nil, "backup-fetch", dst, name), "backup-fetch on a terminal")
	checkDrawn(t, r, "backup-fetch", "MSG: base backup restored")
	if _, err := os.Stat(dst + "/global/pg_control"); err != nil {
		t.Errorf("backup-fetch on a terminal restored no pg_control: %v", err)
	}

	dst2 := bbScratch(t) + "/fetched"
	r = bbMust(t, bbWalden(t, bin, envdir, nil, "backup-fetch", dst2, name), "backup-fetch on a pipe")
	checkPlain(t, r, "backup-fetch")
	if !strings.Contains(r.stderr, "MSG: base backup restored") {
		t.Errorf("backup-fetch on a pipe lost its log:\n%s", bbTail(r.stderr, 2000))
	}
}
