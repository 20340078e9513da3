package main

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// requestLog records the requests a fake S3 served, as "METHOD path?query".
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen = append(l.seen, r.Method+" "+r.URL.RequestURI())
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.seen
	l.seen = nil
	return out
}

func countedS3(t *testing.T) (*s3mem.Backend, *requestLog) {
	t.Helper()
	be := s3mem.New()
	if err := be.CreateBucket("acme-pg-archive"); err != nil {
		t.Fatal(err)
	}
	rl := &requestLog{}
	srv := httptest.NewServer(rl.wrap(gofakes3.New(be, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()))
	t.Cleanup(srv.Close)
	clean(t)
	t.Setenv("WALE_S3_PREFIX", "s3://acme-pg-archive/prod/db1")
	t.Setenv("WALE_S3_ENDPOINT", "http+path://"+strings.TrimPrefix(srv.URL, "http://"))
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDWALDENTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "walden-secret-never-logged")
	t.Setenv("WALE_RETRIES", "3")
	return be, rl
}

func TestWalFetchOfAStoredSegmentIsOneGetRequest(t *testing.T) {
	be, rl := countedS3(t)
	const name = "00000001000000A70000003C"
	seg := filepath.Join(t.TempDir(), name)
	data := walSegment(t, name, "one request ")
	os.WriteFile(seg, data, 0o600)
	if _, errOut, code := walden(t, "wal-push", seg); code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	rl.take()
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, errOut, code := walden(t, "wal-fetch", "-p0", name, dest); code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatal("fetched bytes differ")
	}
	want := "GET /acme-pg-archive/prod/db1/wal_005/" + name + ".lz4"
	if got := rl.take(); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Fatalf("wal-fetch made requests %q, want only %q", got, want)
	}

	// wal-prefetch (the agent's and wal-fetch -p's download) likewise.
	base := t.TempDir()
	if _, errOut, code := walden(t, "wal-prefetch", base, name); code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	if got := rl.take(); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Fatalf("wal-prefetch made requests %q, want only %q", got, want)
	}

	// Stored only under another extension (WAL-E's lzop): the direct GET
	// misses, then the listings of its log id and the next (made together;
	// they would also serve the gap check) find it.
	const other = "00000001000000A70000003D"
	lzoData := walSegment(t, other, "lzop copy ")
	seg2 := filepath.Join(t.TempDir(), other)
	os.WriteFile(seg2, lzoData, 0o600)
	t.Setenv("WALDEN_COMPRESSION", "lzo")
	if _, errOut, code := walden(t, "wal-push", seg2); code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	if _, err := be.HeadObject("acme-pg-archive", "prod/db1/wal_005/"+other+".lzo"); err != nil {
		t.Fatalf("no .lzo copy: %v", err)
	}
	os.Unsetenv("WALDEN_COMPRESSION")
	rl.take()
	dest2 := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, errOut, code := walden(t, "wal-fetch", "-p0", other, dest2); code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	if got, _ := os.ReadFile(dest2); !bytes.Equal(got, lzoData) {
		t.Fatal("fetched .lzo bytes differ")
	}
	got := rl.take()
	if len(got) != 4 || !strings.HasPrefix(got[0], "GET /acme-pg-archive/prod/db1/wal_005/"+other+".lz4") ||
		!strings.HasPrefix(got[3], "GET /acme-pg-archive/prod/db1/wal_005/"+other+".lzo") {
		t.Fatalf("wal-fetch of an .lzo segment made requests %q, want GET .lz4, two listings, GET .lzo", got)
	}
	lists := []string{got[1], got[2]}
	sort.Strings(lists)
	if !strings.Contains(lists[0], "prefix=prod%2Fdb1%2Fwal_005%2F00000001000000A7") || !strings.Contains(lists[1], "prefix=prod%2Fdb1%2Fwal_005%2F00000001000000A8") {
		t.Fatalf("wal-fetch of an .lzo segment listed %q, want its log id and the next", lists)
	}
}

func TestUntrustedS3CertificateFailsWalPushAtOnce(t *testing.T) {
	clean(t)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	t.Setenv("WALE_S3_PREFIX", "s3://acme-pg-archive/prod/db1")
	t.Setenv("WALE_S3_ENDPOINT", "https+path://"+host)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDWALDENTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "walden-secret-never-logged")
	// WALE_RETRIES left at its default.
	const name = "000000010000000000000001"
	seg := filepath.Join(t.TempDir(), name)
	os.WriteFile(seg, walSegment(t, name, "tls "), 0o600)
	start := time.Now()
	_, errOut, code := walden(t, "wal-push", seg)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("wal-push took %v to fail", d)
	}
	if code != 1 || strings.Count(errOut, "ERROR") != 1 || strings.Contains(errOut, "walden-secret-never-logged") {
		t.Fatalf("%d %s", code, errOut)
	}
	if !strings.Contains(errOut, "TLS certificate of "+host+" refused: x509: certificate signed by unknown authority; set AWS_CA_BUNDLE") {
		t.Fatalf("the error does not name the cause: %s", errOut)
	}
}
