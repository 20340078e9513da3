package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/agent/fastpath"
	"github.com/walden-pg/walden/agent/fastpath/internal/wire"
)

func socketPath(t *testing.T) string {
	// t.TempDir can exceed the 107-byte limit of socket paths.
	dir, err := os.MkdirTemp("", "fp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "agent.sock")
}

func serve(t *testing.T, fp string, h Handler) (*Server, string) {
	t.Helper()
	path := socketPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	s := Serve(ln, func() string { return fp }, h)
	t.Cleanup(func() { s.Close(time.Second) })
	return s, path
}

func TestRequestStreamsOutputAndStatusInOrder(t *testing.T) {
	var got *Request
	_, path := serve(t, "fp", func(ctx context.Context, req *Request, stdout, stderr io.Writer) (Reply, error) {
		got = req
		fmt.Fprint(stderr, "line one\n")
		fmt.Fprint(stdout, "out\n")
		fmt.Fprint(stderr, "line two\n")
		return Reply{Status: 3}, nil
	})
	var out, errb bytes.Buffer
	req := &fastpath.Request{Fingerprint: "fp", Command: "wal-push", Positionals: []string{"pg_wal/x"}, Pid: 42, Cwd: "/d"}
	status, err := fastpath.Do(context.Background(), path, req, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if status != 3 || out.String() != "out\n" || errb.String() != "line one\nline two\n" {
		t.Fatalf("status %d stdout %q stderr %q", status, out.String(), errb.String())
	}
	if got.Pid != 42 || got.Positionals[0] != "pg_wal/x" || got.Version != wire.Version {
		t.Fatalf("request arrived as %+v", got)
	}
}

func TestFingerprintMismatchIsRefusedBeforeAnyWork(t *testing.T) {
	called := false
	_, path := serve(t, "agent", func(context.Context, *Request, io.Writer, io.Writer) (Reply, error) {
		called = true
		return Reply{}, nil
	})
	_, err := fastpath.Do(context.Background(), path, &fastpath.Request{Fingerprint: "client"}, io.Discard, io.Discard)
	if !errors.Is(err, fastpath.ErrRefused) || called {
		t.Fatalf("err %v, handler called %v", err, called)
	}
}

func TestHandlerRefusalReachesTheClient(t *testing.T) {
	_, path := serve(t, "fp", func(context.Context, *Request, io.Writer, io.Writer) (Reply, error) {
		return Reply{}, errors.New("relative path from another directory")
	})
	_, err := fastpath.Do(context.Background(), path, &fastpath.Request{Fingerprint: "fp"}, io.Discard, io.Discard)
	if !errors.Is(err, fastpath.ErrRefused) || !strings.Contains(err.Error(), "relative path") {
		t.Fatalf("err %v", err)
	}
}

func TestAbsentSocketIsUnavailable(t *testing.T) {
	_, err := fastpath.Do(context.Background(), socketPath(t), &fastpath.Request{}, io.Discard, io.Discard)
	if !errors.Is(err, fastpath.ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
}

func TestOtherUsersAreRefused(t *testing.T) {
	s, path := serve(t, "fp", func(context.Context, *Request, io.Writer, io.Writer) (Reply, error) {
		t.Error("handler ran for a foreign uid")
		return Reply{}, nil
	})
	s.uid = os.Getuid() + 1
	_, err := fastpath.Do(context.Background(), path, &fastpath.Request{Fingerprint: "fp"}, io.Discard, io.Discard)
	if !errors.Is(err, fastpath.ErrRefused) {
		t.Fatalf("err %v", err)
	}
}

func TestSocketIsPrivateAndStaleOnesAreReplaced(t *testing.T) {
	path := socketPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Fatalf("second agent on a live socket: %v", err)
	}
	ln.Close() // leaves the file behind, as a killed agent would
	ln2, err := Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
	os.Remove(path)
	os.WriteFile(path, nil, 0o600)
	if _, err := Listen(path); err == nil {
		t.Fatal("a regular file was replaced")
	}
}

// TestClientToldToStopGetsTheAgentsAccountOfIt: a client whose context
// ends (archive_command's SIGTERM) hangs up its side; the agent cancels
// the work and its answer, log line and status, still reaches the client.
func TestClientToldToStopGetsTheAgentsAccountOfIt(t *testing.T) {
	started := make(chan struct{})
	_, path := serve(t, "fp", func(ctx context.Context, _ *Request, _, stderr io.Writer) (Reply, error) {
		close(started)
		<-ctx.Done()
		io.WriteString(stderr, "stopped: "+ctx.Err().Error()+"\n")
		return Reply{Status: 1}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	var errb strings.Builder
	status, err := fastpath.Do(ctx, path, &fastpath.Request{Fingerprint: "fp"}, io.Discard, &errb)
	if err != nil || status != 1 || errb.String() != "stopped: context canceled\n" {
		t.Fatalf("status %d, err %v, stderr %q", status, err, errb.String())
	}
}

func TestShutdownCutsWorkShortWithoutAStatusSoTheClientFallsBack(t *testing.T) {
	started := make(chan struct{})
	s, path := serve(t, "fp", func(ctx context.Context, _ *Request, _, stderr io.Writer) (Reply, error) {
		close(started)
		<-ctx.Done()
		return Reply{Status: 1}, nil
	})
	closed := make(chan struct{})
	go func() { <-started; s.Close(100 * time.Millisecond); close(closed) }()
	_, err := fastpath.Do(context.Background(), path, &fastpath.Request{Fingerprint: "fp"}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("an interrupted request reported a status")
	}
	<-closed
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestRootMayAskForACheckButNotForWALWork(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs to run as root") // the suite runs as root
	}
	var served []string
	s, path := serve(t, "agent-fp", func(_ context.Context, req *Request, stdout, _ io.Writer) (Reply, error) {
		served = append(served, req.Command)
		fmt.Fprint(stdout, "{}")
		return Reply{}, nil
	})
	s.uid = 70 // the agent runs as another user, e.g. postgres
	var out bytes.Buffer
	status, err := fastpath.Do(context.Background(), path, &fastpath.Request{Fingerprint: "caller-fp", Command: fastpath.CommandCheck}, &out, io.Discard)
	if err != nil || status != 0 || out.String() != "{}" {
		t.Fatalf("check from root: status %d, err %v, out %q", status, err, out.String())
	}
	_, err = fastpath.Do(context.Background(), path, &fastpath.Request{Fingerprint: "agent-fp", Command: "wal-push"}, io.Discard, io.Discard)
	if !errors.Is(err, fastpath.ErrRefused) {
		t.Fatalf("wal-push from root: %v", err)
	}
	if len(served) != 1 || served[0] != fastpath.CommandCheck {
		t.Fatalf("served %q", served)
	}
}
