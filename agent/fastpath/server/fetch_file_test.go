package server

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/walden-pg/walden/agent/fastpath"
	"golang.org/x/sys/unix"
)

// fileHandler serves the file at src by descriptor, removing it once the
// client has hung up, as the agent serves its prefetch cache.
func fileHandler(t *testing.T, src string, status int) Handler {
	return func(ctx context.Context, req *Request, stdout, stderr io.Writer) (Reply, error) {
		if !TakesFiles(ctx) {
			return Reply{}, errors.New("the client takes no descriptors")
		}
		f, err := os.Open(src)
		if err != nil {
			return Reply{}, err
		}
		defer f.Close()
		fi, _ := f.Stat()
		if err := SendFile(ctx, f, fi.Size()); err != nil {
			return Reply{}, err
		}
		AfterHangUp(ctx, func() { os.Remove(src) })
		return Reply{Status: status}, nil
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestFetchOfASentFileLinksItIntoPlaceWithoutCopying: a file the agent
// hands over by descriptor on the same mount becomes dest itself (same
// inode, no byte copied), even though the agent removes its own name as
// soon as the client hangs up.
func TestFetchOfASentFileLinksItIntoPlaceWithoutCopying(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "cached")
	want := []byte("a whole cached segment")
	os.WriteFile(src, want, 0o600)
	ino := inode(t, src)
	_, path := serve(t, "fp", fileHandler(t, src, 0))
	dest := filepath.Join(dir, "RECOVERYXLOG")
	if got, err := fastpath.Fetch(context.Background(), path, &fastpath.Request{Fingerprint: "fp", Command: "wal-fetch"}, dest, io.Discard, io.Discard); err != nil || got != 0 {
		t.Fatalf("status %d, err %v", got, err)
	}
	if b, _ := os.ReadFile(dest); string(b) != string(want) {
		t.Fatalf("dest holds %q", b)
	}
	if inode(t, dest) != ino {
		t.Errorf("dest is a copy, not the sent file linked into place")
	}
	if l := leftovers(t, dest); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
	waitGone(t, src)
}

// TestFetchOfASentFileCopiesItWhenItCannotBeLinked: a descriptor of a
// file elsewhere (here an unlinked one, which no link can name again) is
// copied; the result is the same bytes.
func TestFetchOfASentFileCopiesItWhenItCannotBeLinked(t *testing.T) {
	want := []byte("bytes of a file on another mount")
	_, path := serve(t, "fp", func(ctx context.Context, req *Request, stdout, stderr io.Writer) (Reply, error) {
		fd, err := unix.MemfdCreate("segment", 0)
		if err != nil {
			return Reply{}, err
		}
		f := os.NewFile(uintptr(fd), "memfd")
		defer f.Close()
		f.Write(want)
		f.Seek(0, io.SeekStart)
		return Reply{}, SendFile(ctx, f, int64(len(want)))
	})
	dest := fetchDest(t)
	if got, err := fastpath.Fetch(context.Background(), path, &fastpath.Request{Fingerprint: "fp", Command: "wal-fetch"}, dest, io.Discard, io.Discard); err != nil || got != 0 {
		t.Fatalf("status %d, err %v", got, err)
	}
	if b, _ := os.ReadFile(dest); string(b) != string(want) {
		t.Fatalf("dest holds %q, want %q", b, want)
	}
	if l := leftovers(t, dest); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
}

// TestFetchOfASentFileKeepsNothingOnFailureOrReset: a sent file followed
// by a failure status leaves nothing at dest or beside it; one followed by
// a reset gives way to the data that follows.
func TestFetchOfASentFileKeepsNothingOnFailureOrReset(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "cached")
	os.WriteFile(src, []byte("cached"), 0o600)
	_, path := serve(t, "fp", fileHandler(t, src, 200))
	dest := filepath.Join(dir, "RECOVERYXLOG")
	if got, err := fastpath.Fetch(context.Background(), path, &fastpath.Request{Fingerprint: "fp", Command: "wal-fetch"}, dest, io.Discard, io.Discard); err != nil || got != 200 {
		t.Fatalf("status %d, err %v; want 200", got, err)
	}
	nothingLeft(t, dest)

	src2 := filepath.Join(dir, "cached2")
	os.WriteFile(src2, []byte("bad cached copy"), 0o600)
	_, path = serve(t, "fp", func(ctx context.Context, req *Request, stdout, stderr io.Writer) (Reply, error) {
		f, _ := os.Open(src2)
		defer f.Close()
		if err := SendFile(ctx, f, 15); err != nil {
			return Reply{}, err
		}
		ResetData(ctx)
		io.WriteString(Data(ctx), "from the store")
		return Reply{}, nil
	})
	if got, err := fastpath.Fetch(context.Background(), path, &fastpath.Request{Fingerprint: "fp", Command: "wal-fetch"}, dest, io.Discard, io.Discard); err != nil || got != 0 {
		t.Fatalf("status %d, err %v", got, err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "from the store" {
		t.Fatalf("dest holds %q after a reset", b)
	}
	if l := leftovers(t, dest); len(l) != 0 {
		t.Fatalf("temporary files left: %v", l)
	}
	if b, _ := os.ReadFile(src2); string(b) != "bad cached copy" {
		t.Fatalf("the agent's file changed: %q", b)
	}
}

// TestSendFileToAClientThatTakesNoDescriptorsFails: an older or non-unix
// client gets bytes, never a descriptor it cannot read.
func TestSendFileToAClientThatTakesNoDescriptorsFails(t *testing.T) {
	var sendErr error
	var takes bool
	_, path := serve(t, "fp", func(ctx context.Context, req *Request, stdout, stderr io.Writer) (Reply, error) {
		takes = TakesFiles(ctx)
		f, _ := os.Open(os.DevNull)
		defer f.Close()
		sendErr = SendFile(ctx, f, 0)
		return Reply{}, nil
	})
	if _, err := fastpath.Do(context.Background(), path, &fastpath.Request{Fingerprint: "fp", Command: "wal-fetch"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if takes || sendErr == nil {
		t.Fatalf("TakesFiles %v, SendFile error %v for a client that asked for no descriptors", takes, sendErr)
	}
}

func waitGone(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s was not removed after the client hung up", path)
}
