package server

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walden-pg/walden/agent/fastpath"
)

func fetchDest(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "RECOVERYXLOG")
}

func leftovers(t *testing.T, dest string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), ".walden-fetch-*"))
	return m
}

// nothingLeft fails unless a failed fetch left nothing at dest or beside it.
func nothingLeft(t *testing.T, dest string) {
	t.Helper()
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("a failed fetch left %s", dest)
	}
	if l := leftovers(t, dest); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
}

// TestFetchWritesWhatTheAgentSendsOnlyOnSuccess: the bytes land at dest
// on status 0, after a reset only what follows it counts, and a failure
// status leaves nothing at dest or beside it.
func TestFetchWritesWhatTheAgentSendsOnlyOnSuccess(t *testing.T) {
	status := 0
	_, path := serve(t, "fp", func(ctx context.Context, req *Request, stdout, stderr io.Writer) (Reply, error) {
		d := Data(ctx)
		if d == nil {
			return Reply{}, errors.New("no data stream for a receiving client")
		}
		io.WriteString(d, "stale cached bytes")
		ResetData(ctx)
		io.WriteString(d, "segment ")
		io.WriteString(d, "content")
		io.WriteString(stderr, "log line\n")
		return Reply{Status: status}, nil
	})
	dest := fetchDest(t)
	var errb strings.Builder
	got, err := fastpath.Fetch(context.Background(), path, &fastpath.Request{Fingerprint: "fp", Command: "wal-fetch"}, dest, io.Discard, &errb)
	if err != nil || got != 0 {
		t.Fatalf("status %d, err %v", got, err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "segment content" || errb.String() != "log line\n" {
		t.Fatalf("dest holds %q, stderr %q", b, errb.String())
	}
	if l := leftovers(t, dest); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}

	status = 200
	dest = fetchDest(t)
	if got, err := fastpath.Fetch(context.Background(), path, &fastpath.Request{Fingerprint: "fp", Command: "wal-fetch"}, dest, io.Discard, io.Discard); err != nil || got != 200 {
		t.Fatalf("status %d, err %v; want 200", got, err)
	}
	nothingLeft(t, dest)
}

// TestFetchBrokenConnectionLeavesNothingAndAsksTheCallerToFetch: an agent
// that dies mid-transfer sends no status: the caller must do the work.
func TestFetchBrokenConnectionLeavesNothingAndAsksTheCallerToFetch(t *testing.T) {
	_, path := serve(t, "fp", func(ctx context.Context, req *Request, stdout, stderr io.Writer) (Reply, error) {
		io.WriteString(Data(ctx), "half a segm")
		panic("agent dies")
	})
	dest := fetchDest(t)
	_, err := fastpath.Fetch(context.Background(), path, &fastpath.Request{Fingerprint: "fp", Command: "wal-fetch"}, dest, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("no error from an agent that died mid-transfer")
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("half a file at %s", dest)
	}
	if l := leftovers(t, dest); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
}

// TestFetchIntoAnUnwritableDirectoryIsLeftToTheCaller: the agent is not
// even asked; the caller's own run reports the directory.
func TestFetchIntoAnUnwritableDirectoryIsLeftToTheCaller(t *testing.T) {
	called := false
	_, path := serve(t, "fp", func(ctx context.Context, req *Request, stdout, stderr io.Writer) (Reply, error) {
		called = true
		return Reply{}, nil
	})
	_, err := fastpath.Fetch(context.Background(), path, &fastpath.Request{Fingerprint: "fp"}, "/nonexistent/dir/RECOVERYXLOG", io.Discard, io.Discard)
	if !errors.Is(err, fastpath.ErrUnavailable) || called {
		t.Fatalf("err %v, agent asked %v", err, called)
	}
}
