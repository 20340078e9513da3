package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDelayedHoldsEveryRequestBeforeTheHandler(t *testing.T) {
	var reached time.Time
	h := delayed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = time.Now()
	}), 80*time.Millisecond)
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPut} {
		start := time.Now()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/bench/key", nil))
		if got := reached.Sub(start); got < 80*time.Millisecond {
			t.Errorf("%s reached the handler after %s, want at least 80ms", method, got)
		}
	}
}

func TestDelayedWithZeroIsTheHandlerItself(t *testing.T) {
	called := false
	h := delayed(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }), 0)
	start := time.Now()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if !called || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("called %v after %s", called, time.Since(start))
	}
}

func TestSelfSignedCertificateVerifiesFor127001(t *testing.T) {
	dir := t.TempDir()
	ip := net.ParseIP("127.0.0.1")
	cert, err := selfSigned(ip, dir)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cert.pem.tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("cert.pem holds no certificate")
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("a client trusting only cert.pem: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
