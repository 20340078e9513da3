package gcs

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walden-pg/walden/storage"
)

func TestUntrustedCertificateFailsAtOnceNamingEndpointAndCause(t *testing.T) {
	// httptest's certificate is trusted by nothing here; the handshake
	// fails before any handler runs.
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	t.Setenv("STORAGE_EMULATOR_HOST", srv.URL)
	p, err := storage.ParsePrefix("gs://walden-test/p")
	if err != nil {
		t.Fatal(err)
	}
	// WALE_RETRIES 0: retry transient errors without limit.
	s, err := New(context.Background(), p, "", 0, WithBackoff(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ops := map[string]func(context.Context) error{
		"list": func(ctx context.Context) error { _, err := s.List(ctx, "wal_005/"); return err },
		"get":  func(ctx context.Context) error { _, err := s.Get(ctx, "k"); return err },
		"put": func(ctx context.Context) error {
			return s.Put(ctx, "k", strings.NewReader("abc"), 3, storage.PutOptions{IfAbsent: true})
		},
	}
	for name, op := range ops {
		before := conns.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		err := op(ctx)
		d := time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("%s succeeded with an untrusted certificate", name)
		}
		msg := err.Error()
		for _, want := range []string{"TLS certificate of " + host + " refused", "certificate signed by unknown authority", "set SSL_CERT_FILE"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: %q does not say %q", name, msg, want)
			}
		}
		if strings.Contains(msg, "giving up") {
			t.Errorf("%s: %q reports retries of a permanent failure", name, msg)
		}
		if d > 5*time.Second {
			t.Errorf("%s took %v to fail", name, d)
		}
		if n := conns.Load() - before; n != 1 {
			t.Errorf("%s connected %d times, want 1 (no retry)", name, n)
		}
	}
}
