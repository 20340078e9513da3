package fastpath

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

	"github.com/walden-pg/walden/config"
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
	req := &Request{Fingerprint: "fp", Command: "wal-push", Positionals: []string{"pg_wal/x"}, Pid: 42, Cwd: "/d"}
	status, err := Do(context.Background(), path, req, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if status != 3 || out.String() != "out\n" || errb.String() != "line one\nline two\n" {
		t.Fatalf("status %d stdout %q stderr %q", status, out.String(), errb.String())
	}
	if got.Pid != 42 || got.Positionals[0] != "pg_wal/x" || got.Version != Version {
		t.Fatalf("request arrived as %+v", got)
	}
}

func TestFingerprintMismatchIsRefusedBeforeAnyWork(t *testing.T) {
	called := false
	_, path := serve(t, "agent", func(context.Context, *Request, io.Writer, io.Writer) (Reply, error) {
		called = true
		return Reply{}, nil
	})
	_, err := Do(context.Background(), path, &Request{Fingerprint: "client"}, io.Discard, io.Discard)
	if !errors.Is(err, ErrRefused) || called {
		t.Fatalf("err %v, handler called %v", err, called)
	}
}

func TestHandlerRefusalReachesTheClient(t *testing.T) {
	_, path := serve(t, "fp", func(context.Context, *Request, io.Writer, io.Writer) (Reply, error) {
		return Reply{}, errors.New("relative path from another directory")
	})
	_, err := Do(context.Background(), path, &Request{Fingerprint: "fp"}, io.Discard, io.Discard)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "relative path") {
		t.Fatalf("err %v", err)
	}
}

func TestAbsentSocketIsUnavailable(t *testing.T) {
	_, err := Do(context.Background(), socketPath(t), &Request{}, io.Discard, io.Discard)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
}

func TestOtherUsersAreRefused(t *testing.T) {
	s, path := serve(t, "fp", func(context.Context, *Request, io.Writer, io.Writer) (Reply, error) {
		t.Error("handler ran for a foreign uid")
		return Reply{}, nil
	})
	s.uid = os.Getuid() + 1
	_, err := Do(context.Background(), path, &Request{Fingerprint: "fp"}, io.Discard, io.Discard)
	if !errors.Is(err, ErrRefused) {
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

func TestClientHangingUpCancelsTheWork(t *testing.T) {
	cancelled := make(chan struct{})
	started := make(chan struct{})
	_, path := serve(t, "fp", func(ctx context.Context, _ *Request, _, _ io.Writer) (Reply, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return Reply{}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	if _, err := Do(ctx, path, &Request{Fingerprint: "fp"}, io.Discard, io.Discard); err == nil {
		t.Fatal("no error after cancel")
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("handler context not cancelled when the client left")
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
	_, err := Do(context.Background(), path, &Request{Fingerprint: "fp"}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("an interrupted request reported a status")
	}
	<-closed
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestFingerprintIgnoresAgentOnlySettings(t *testing.T) {
	base := &config.Settings{Compression: "lz4", LogFormat: "wal-e"}
	a, b := *base, *base
	b.BackupSchedule, b.MetricsListen, b.SocketPath, b.Terse, b.UploadConcurrency = "* * * * *", "127.0.0.1:1", "/x", true, 99
	if Fingerprint(&a) != Fingerprint(&b) {
		t.Fatal("agent-only settings changed the fingerprint")
	}
	c := *base
	c.Compression = "zstd"
	if Fingerprint(&a) == Fingerprint(&c) {
		t.Fatal("compression did not change the fingerprint")
	}
	d := *base
	d.GPG.KeyID = "ABCD1234"
	if Fingerprint(&a) == Fingerprint(&d) {
		t.Fatal("the GPG key did not change the fingerprint")
	}
	t.Setenv("AWS_PROFILE", "other")
	before := Fingerprint(&a)
	t.Setenv("AWS_PROFILE", "third")
	if Fingerprint(&a) == before {
		t.Fatal("AWS_PROFILE did not change the fingerprint")
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
	status, err := Do(context.Background(), path, &Request{Fingerprint: "caller-fp", Command: CommandCheck}, &out, io.Discard)
	if err != nil || status != 0 || out.String() != "{}" {
		t.Fatalf("check from root: status %d, err %v, out %q", status, err, out.String())
	}
	_, err = Do(context.Background(), path, &Request{Fingerprint: "agent-fp", Command: "wal-push"}, io.Discard, io.Discard)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("wal-push from root: %v", err)
	}
	if len(served) != 1 || served[0] != CommandCheck {
		t.Fatalf("served %q", served)
	}
}
