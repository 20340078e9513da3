package s3

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/storage"
)

// tlsFake is the fake S3 served over HTTPS with httptest's self-signed
// certificate for 127.0.0.1, counting the connections made to it.
type tlsFake struct {
	srv   *httptest.Server
	conns atomic.Int64
	pem   []byte // the server's certificate
}

func newTLSFake(t *testing.T) *tlsFake {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	f := &tlsFake{}
	f.srv = httptest.NewUnstartedServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	cert, der := selfSigned(t)
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	f.pem = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return f
}

// selfSigned makes a fresh certificate for 127.0.0.1 (httptest's own is
// the same for every server, and these tests need two that differ).
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "walden test " + serial.String()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der
}

func (f *tlsFake) store(t *testing.T, retries int) *Store {
	t.Helper()
	p, err := storage.ParsePrefix("s3://" + testBucket + "/p")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), p, config.S3{
		Endpoint:        "https+path://" + strings.TrimPrefix(f.srv.URL, "https://"),
		AccessKeyID:     testKeyID,
		SecretAccessKey: testSecret,
	}, retries, WithBackoff(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUntrustedCertificateFailsAtOnceNamingEndpointAndCause(t *testing.T) {
	t.Parallel()
	f := newTLSFake(t)
	host := strings.TrimPrefix(f.srv.URL, "https://")
	// WALE_RETRIES 0: retry transient errors without limit.
	s := f.store(t, 0)
	ops := map[string]func(context.Context) error{
		"list": func(ctx context.Context) error { _, err := s.List(ctx, "wal_005/"); return err },
		"get":  func(ctx context.Context) error { _, err := s.Get(ctx, "k"); return err },
		"put": func(ctx context.Context) error {
			return s.Put(ctx, "k", strings.NewReader("abc"), 3, storage.PutOptions{IfAbsent: true})
		},
	}
	for name, op := range ops {
		before := f.conns.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		err := op(ctx)
		d := time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("%s succeeded with an untrusted certificate", name)
		}
		msg := err.Error()
		for _, want := range []string{"TLS certificate of " + host + " refused", "certificate signed by unknown authority", "set AWS_CA_BUNDLE"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: %q does not say %q", name, msg, want)
			}
		}
		if strings.Contains(msg, "\n") || strings.Contains(msg, testSecret) {
			t.Errorf("%s: %q is not one clean line", name, msg)
		}
		if d > 5*time.Second {
			t.Errorf("%s took %v to fail", name, d)
		}
		if n := f.conns.Load() - before; n != 1 {
			t.Errorf("%s connected %d times, want 1 (no retry)", name, n)
		}
	}
}

// The trust store is read once per process, so each case runs in a child
// test process with its own environment.
func TestSystemTrustStoreSSLCertFileAndAWSCABundleAllApply(t *testing.T) {
	if os.Getenv("WALDEN_TLS_CHILD_URL") != "" {
		return
	}
	t.Parallel()
	f := newTLSFake(t)
	other := newTLSFake(t) // a certificate that does not sign f's
	dir := t.TempDir()
	server, unrelated := filepath.Join(dir, "server.pem"), filepath.Join(dir, "other.pem")
	if err := os.WriteFile(server, f.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unrelated, other.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		ok   bool
	}{
		{"SSL_CERT_FILE with an unrelated AWS_CA_BUNDLE", []string{"SSL_CERT_FILE=" + server, "AWS_CA_BUNDLE=" + unrelated}, true},
		{"SSL_CERT_FILE alone", []string{"SSL_CERT_FILE=" + server, "AWS_CA_BUNDLE="}, true},
		{"SSL_CERT_DIR", []string{"SSL_CERT_FILE=" + unrelated, "SSL_CERT_DIR=" + dir, "AWS_CA_BUNDLE="}, true},
		{"AWS_CA_BUNDLE with an unrelated SSL_CERT_FILE", []string{"SSL_CERT_FILE=" + unrelated, "AWS_CA_BUNDLE=" + server}, true},
		{"neither", []string{"SSL_CERT_FILE=" + unrelated, "SSL_CERT_DIR=" + t.TempDir(), "AWS_CA_BUNDLE=" + unrelated}, false},
	}
	for _, c := range cases {
		cmd := exec.Command(os.Args[0], "-test.run=^TestTrustChild$", "-test.v")
		cmd.Env = append(os.Environ(), "WALDEN_TLS_CHILD_URL="+f.srv.URL)
		if !strings.Contains(strings.Join(c.env, " "), "SSL_CERT_DIR=") {
			cmd.Env = append(cmd.Env, "SSL_CERT_DIR="+t.TempDir())
		}
		cmd.Env = append(cmd.Env, c.env...)
		out, err := cmd.CombinedOutput()
		if c.ok && err != nil {
			t.Errorf("%s: not trusted: %s", c.name, out)
		}
		if !c.ok && (err == nil || !strings.Contains(string(out), "certificate signed by unknown authority")) {
			t.Errorf("%s: want a refused certificate, got %v: %s", c.name, err, out)
		}
	}
}

func TestTrustChild(t *testing.T) {
	u := os.Getenv("WALDEN_TLS_CHILD_URL")
	if u == "" {
		return // run by TestSystemTrustStoreSSLCertFileAndAWSCABundleAllApply
	}
	f := &tlsFake{srv: &httptest.Server{URL: u}}
	s := f.store(t, 1)
	if _, err := s.List(context.Background(), "wal_005/"); err != nil {
		t.Fatal(err)
	}
}

// Through a proxy net/http makes the TLS connection to the store with the
// transport's configuration itself, so that configuration must hold the
// whole system store; without one, walden's dialer verifies against the
// bundle first.
func TestAProxyInTheEnvironmentKeepsTheWholeSystemStoreInTheConfiguration(t *testing.T) {
	for _, proxy := range []string{"", "http://127.0.0.1:9"} {
		t.Setenv("HTTPS_PROXY", proxy)
		tr := newHTTPClient().GetTransport()
		if proxy == "" && (tr.DialTLSContext == nil || tr.TLSClientConfig.RootCAs == nil) {
			t.Error("without a proxy: no staged dialer, or no pool for AWS_CA_BUNDLE to join")
		}
		if proxy != "" && (tr.DialTLSContext != nil || tr.TLSClientConfig.RootCAs == nil || tr.TLSClientConfig.RootCAs.Equal(x509.NewCertPool())) {
			t.Error("with HTTPS_PROXY set: the transport's own configuration lacks the system store")
		}
	}
}
