package resume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

var fast = NewOptions(WithBackoff(time.Millisecond), WithStallTimeout(100*time.Millisecond))

// object serves data; body decides what each request's body does.
type object struct {
	data    []byte
	offsets []int64
	body    func(ctx context.Context, n int, rest []byte) io.ReadCloser
}

func (o *object) open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	o.offsets = append(o.offsets, off)
	return o.body(ctx, len(o.offsets), o.data[off:]), int64(len(o.data)), nil
}

func failWith(err error) error { return fmt.Errorf("wrapped: %w", err) }

func read(t *testing.T, o *object, attempts int, opts Options) ([]byte, error) {
	t.Helper()
	r, err := Open(context.Background(), Config{Open: o.open, Attempts: attempts, Options: opts, Fail: failWith})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestShortBodiesAreResumedFromTheOffsetReached(t *testing.T) {
	o := &object{data: []byte(strings.Repeat("0123456789", 5)), body: func(_ context.Context, _ int, rest []byte) io.ReadCloser {
		// Every connection ends cleanly after 20 bytes: only the known
		// size tells that the object is not complete.
		return io.NopCloser(bytes.NewReader(rest[:min(20, len(rest))]))
	}}
	got, err := read(t, o, 3, fast)
	if err != nil || !bytes.Equal(got, o.data) {
		t.Fatalf("got %q, %v", got, err)
	}
	if fmt.Sprint(o.offsets) != "[0 20 40]" {
		t.Errorf("requested offsets %v", o.offsets)
	}
}

func TestGivesUpAfterAttemptsWithoutProgress(t *testing.T) {
	o := &object{data: []byte("abcdef"), body: func(_ context.Context, n int, rest []byte) io.ReadCloser {
		if n == 1 {
			return io.NopCloser(bytes.NewReader(rest[:2]))
		}
		return io.NopCloser(bytes.NewReader(nil))
	}}
	got, err := read(t, o, 3, fast)
	var gu *GaveUp
	if string(got) != "ab" || !errors.As(err, &gu) || gu.Attempts != 3 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %q, %v", got, err)
	}
	if want := "wrapped: giving up after 3 attempts: reading the body at offset 2: unexpected EOF"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	// Three breaks in a row since the last bytes arrived.
	if fmt.Sprint(o.offsets) != "[0 2 2]" {
		t.Errorf("requested offsets %v", o.offsets)
	}
	r, _ := Open(context.Background(), Config{Open: o.open, Attempts: 1, Options: fast, Fail: failWith})
	r.Close()
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}

type stallBody struct {
	ctx  context.Context
	data io.Reader
}

func (s stallBody) Read(p []byte) (int, error) {
	n, err := s.data.Read(p)
	if err == io.EOF {
		<-s.ctx.Done() // the request's context: the watchdog cancels it
		return 0, s.ctx.Err()
	}
	return n, err
}
func (stallBody) Close() error { return nil }

func TestStalledBodyIsResumed(t *testing.T) {
	o := &object{data: []byte("0123456789"), body: func(ctx context.Context, n int, rest []byte) io.ReadCloser {
		if n == 1 {
			return stallBody{ctx, bytes.NewReader(rest[:4])}
		}
		return io.NopCloser(bytes.NewReader(rest))
	}}
	start := time.Now()
	got, err := read(t, o, 2, fast)
	if err != nil || string(got) != "0123456789" || fmt.Sprint(o.offsets) != "[0 4]" {
		t.Fatalf("got %q, %v after %v", got, err, o.offsets)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	// Stalling every time gives up, saying so.
	o = &object{data: []byte("0123456789"), body: func(ctx context.Context, _ int, rest []byte) io.ReadCloser {
		return stallBody{ctx, bytes.NewReader(nil)}
	}}
	if _, err := read(t, o, 2, fast); !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "nothing received for 100ms") {
		t.Errorf("err = %v", err)
	}
}

func TestCancelEndsTheDownload(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	o := &object{data: []byte("0123456789"), body: func(rctx context.Context, _ int, rest []byte) io.ReadCloser {
		cancel()
		return stallBody{rctx, bytes.NewReader(nil)}
	}}
	r, err := Open(ctx, Config{Open: o.open, Attempts: 5, Options: NewOptions(), Fail: failWith})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, context.Canceled) || len(o.offsets) != 1 {
		t.Errorf("err = %v after %d requests", err, len(o.offsets))
	}
}

func TestOpenErrorIsReturnedAsIs(t *testing.T) {
	boom := errors.New("boom")
	_, err := Open(context.Background(), Config{
		Open: func(context.Context, int64) (io.ReadCloser, int64, error) { return nil, 0, boom },
		Fail: failWith,
	})
	if err != boom {
		t.Errorf("err = %v", err)
	}
}

func TestAttemptsAndDefaults(t *testing.T) {
	if Attempts(0) != ForeverAttempts || Attempts(-1) != ForeverAttempts || Attempts(3) != 3 {
		t.Error("Attempts")
	}
	if o := NewOptions(); o.MaxBackoff != DefaultMaxBackoff || o.StallTimeout != DefaultStallTimeout {
		t.Errorf("defaults %+v", o)
	}
}

func TestConnectionsThatBreakAfterAFewBytesUseUpTheAttempts(t *testing.T) {
	// Each connection delivers 10 bytes and breaks: progress of a sort,
	// but without a bound that is one request per 10 bytes.
	o := &object{data: bytes.Repeat([]byte("x"), 1000), body: func(_ context.Context, _ int, rest []byte) io.ReadCloser {
		return io.NopCloser(bytes.NewReader(rest[:min(10, len(rest))]))
	}}
	got, err := read(t, o, 3, fast)
	var gu *GaveUp
	if !errors.As(err, &gu) || gu.Attempts != 3 || len(got) != 30 {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if len(o.offsets) != 3 {
		t.Errorf("%d requests, want 3", len(o.offsets))
	}
}

func TestAConnectionDeliveringTheFloorEarnsAFreshBudget(t *testing.T) {
	size := 3*ProgressFloor + 100
	o := &object{data: bytes.Repeat([]byte("y"), size), body: func(_ context.Context, n int, rest []byte) io.ReadCloser {
		if n%2 == 1 { // every other connection breaks at once, the others after the floor
			return io.NopCloser(bytes.NewReader(rest[:min(ProgressFloor, len(rest))]))
		}
		return io.NopCloser(bytes.NewReader(nil))
	}}
	got, err := read(t, o, 3, fast)
	if err != nil || len(got) != size {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
}
