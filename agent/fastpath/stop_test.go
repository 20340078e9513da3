package fastpath

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestClientToldToStopGivesUpOnAnAgentThatNeverAnswers: after hanging up
// its side, a client waits stopWait for the agent's answer, then returns
// its context's error instead of hanging.
func TestClientToldToStopGivesUpOnAnAgentThatNeverAnswers(t *testing.T) {
	old := stopWait
	stopWait = 200 * time.Millisecond
	t.Cleanup(func() { stopWait = old })
	dir, err := os.MkdirTemp("", "fp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hungUp := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(io.Discard, c) // the request, then EOF at the hang-up
		close(hungUp)
		time.Sleep(10 * time.Second) // and never an answer
	}()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = Do(ctx, path, &Request{Fingerprint: "fp"}, io.Discard, io.Discard)
	if err != context.Canceled {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	select {
	case <-hungUp:
	default:
		t.Fatal("the agent never saw the client hang up")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %v", d)
	}
}
