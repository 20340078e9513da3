package trust

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// issuer is a certificate with its key, able to sign others.
type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCert(t *testing.T, tmpl *x509.Certificate, parent *issuer) *issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{cert: c, key: key}
}

func newCA(t *testing.T, name string, parent *issuer) *issuer {
	return newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, parent)
}

func newLeaf(t *testing.T, parent *issuer, dns []string, ips []net.IP) *issuer {
	return newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "walden test server"}, DNSNames: dns, IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, parent)
}

// serve answers TLS handshakes on 127.0.0.1 with leaf and the chain sent
// along with it; it returns the address.
func serve(t *testing.T, leaf *issuer, chain ...*issuer) string {
	t.Helper()
	c := tls.Certificate{Certificate: [][]byte{leaf.cert.Raw}, PrivateKey: leaf.key}
	for _, i := range chain {
		c.Certificate = append(c.Certificate, i.cert.Raw)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{c}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				conn.(*tls.Conn).Handshake()
				conn.Close()
			}()
		}
	}()
	return l.Addr().String()
}

func pool(cas ...*issuer) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cas {
		p.AddCert(c.cert)
	}
	return p
}

// dialAs dials the server at addr under the name host (the TCP connection
// always goes to addr).
func dialAs(roots *x509.CertPool, host, addr string) error {
	_, port, _ := net.SplitHostPort(addr)
	d := &Dialer{Roots: roots, HandshakeTimeout: 5 * time.Second,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
	c, err := d.DialTLSContext(context.Background(), "tcp", net.JoinHostPort(host, port))
	if err == nil {
		c.Close()
	}
	return err
}

var loopback = []net.IP{net.IPv4(127, 0, 0, 1)}

func TestConfiguredRootsVerifyAChainWithoutReadingTheSystemStore(t *testing.T) {
	root := newCA(t, "walden test root", nil)
	mid := newCA(t, "walden test intermediate", root)
	addr := serve(t, newLeaf(t, mid, []string{"store.walden.test"}, loopback), mid)
	before := SystemStoreReads.Load()
	if err := dialAs(pool(root), "127.0.0.1", addr); err != nil {
		t.Fatalf("by address: %v", err)
	}
	if err := dialAs(pool(root), "store.walden.test", addr); err != nil {
		t.Fatalf("by name: %v", err)
	}
	if n := SystemStoreReads.Load() - before; n != 0 {
		t.Errorf("the system store was read %d times for a chain the configured roots verify", n)
	}
}

func TestAnUnknownAuthorityIsRefusedAsCryptoTLSRefusesIt(t *testing.T) {
	root, other := newCA(t, "walden test root", nil), newCA(t, "unrelated root", nil)
	addr := serve(t, newLeaf(t, root, nil, loopback))
	before := SystemStoreReads.Load()
	err := dialAs(pool(other), "127.0.0.1", addr)
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &cv) || !errors.As(err, &ua) {
		t.Fatalf("got %v (%T), want a certificate verification error for an unknown authority", err, err)
	}
	if len(cv.UnverifiedCertificates) != 1 {
		t.Errorf("the error carries %d certificates, want the one sent", len(cv.UnverifiedCertificates))
	}
	if SystemStoreReads.Load() == before {
		t.Error("refused without trying the system store")
	}
}

// The name checked is the one dialled, also for an address, for which no
// SNI is sent and the connection state names no server.
func TestTheNameDialledIsCheckedAgainstTheCertificate(t *testing.T) {
	root := newCA(t, "walden test root", nil)
	byName := serve(t, newLeaf(t, root, []string{"store.walden.test"}, nil))
	byAddress := serve(t, newLeaf(t, root, nil, loopback))
	var he x509.HostnameError
	for _, c := range []struct{ host, addr string }{
		{"127.0.0.1", byName},
		{"other.walden.test", byName},
		{"store.walden.test", byAddress},
	} {
		if err := dialAs(pool(root), c.host, c.addr); !errors.As(err, &he) {
			t.Errorf("%s, certificate for another name: got %v, want a hostname error", c.host, err)
		}
	}
}

func TestAnExpiredCertificateIsRefused(t *testing.T) {
	root := newCA(t, "walden test root", nil)
	old := newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "expired"}, IPAddresses: loopback,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, root)
	var ci x509.CertificateInvalidError
	if err := dialAs(pool(root), "127.0.0.1", serve(t, old)); !errors.As(err, &ci) || ci.Reason != x509.Expired {
		t.Fatalf("got %v, want an expired certificate refused", err)
	}
}

func TestAServerThatNeverHandshakesTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the test ends
		}
	}()
	d := &Dialer{HandshakeTimeout: 200 * time.Millisecond}
	start := time.Now()
	if _, err := d.DialTLSContext(context.Background(), "tcp", l.Addr().String()); err == nil {
		t.Fatal("a handshake that never came succeeded")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("gave up after %v, want about 200ms", el)
	}
}

// The system store is read once per process, so the bundle-file case runs
// in a child with SSL_CERT_FILE naming the root and SSL_CERT_DIR empty.
func TestTheSystemBundleFileVerifiesWithoutTheWholeStore(t *testing.T) {
	if addr := os.Getenv("WALDEN_TRUST_CHILD_ADDR"); addr != "" {
		if err := dialAs(nil, "127.0.0.1", addr); err != nil {
			t.Fatal(err)
		}
		if n := SystemStoreReads.Load(); n != 0 {
			t.Fatalf("the whole system store was read %d times", n)
		}
		return
	}
	root := newCA(t, "walden test root", nil)
	addr := serve(t, newLeaf(t, root, nil, loopback))
	dir := t.TempDir()
	file := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTheSystemBundleFileVerifiesWithoutTheWholeStore$")
	cmd.Env = append(os.Environ(), "WALDEN_TRUST_CHILD_ADDR="+addr, "SSL_CERT_FILE="+file, "SSL_CERT_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
