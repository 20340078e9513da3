package deadline

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func client(l Limits) *http.Client {
	return &http.Client{Transport: &Transport{Base: http.DefaultTransport.(*http.Transport).Clone(), Limits: l}}
}

var short = Limits{Response: 200 * time.Millisecond, PerMiB: 100 * time.Millisecond, Stall: 200 * time.Millisecond}

// slowSource yields its data in pieces, pausing longer than the stall
// limit before each: the caller's own slowness.
type slowSource struct {
	data  []byte
	pause time.Duration
}

func (s *slowSource) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p[:min(len(p), 1000)], s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestTheCallersOwnPacingIsNotAStall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Write(bytes.Repeat([]byte("x"), int(n)))
	}))
	defer srv.Close()
	c := client(Limits{Response: 5 * time.Second, PerMiB: time.Second, Stall: 200 * time.Millisecond})
	// The request body comes slowly from its source...
	req, _ := http.NewRequest(http.MethodPut, srv.URL, &slowSource{data: bytes.Repeat([]byte("y"), 3000), pause: 300 * time.Millisecond})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// ...and the response is read slowly by its consumer.
	var got int
	buf := make([]byte, 1000)
	for {
		time.Sleep(300 * time.Millisecond)
		n, err := resp.Body.Read(buf)
		got += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
	}
	if got != 3000 {
		t.Errorf("got %d bytes", got)
	}
}

func TestAnUnansweredRequestIsAHang(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	_, err := client(short).Post(srv.URL, "application/octet-stream", strings.NewReader("abc"))
	if !IsHang(err) || !strings.Contains(err.Error(), "no response from "+strings.TrimPrefix(srv.URL, "http://")+" within 200ms") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestAnOperationWithoutProgressEnds(t *testing.T) {
	ctx, done := Operation(context.Background(), 100*time.Millisecond)
	defer done()
	for i := 0; i < 5; i++ {
		time.Sleep(50 * time.Millisecond)
		Progress(ctx) // progress keeps it alive
	}
	if ctx.Err() != nil {
		t.Fatal("ended despite progress")
	}
	<-ctx.Done()
	if h := Cause(ctx); h == nil || h.Error() != "no progress within 100ms" {
		t.Fatalf("cause = %v", context.Cause(ctx))
	}
}
