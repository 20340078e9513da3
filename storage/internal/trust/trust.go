// Package trust makes the TLS connections of a short-lived process cheap:
// it verifies a server's chain against the configured roots first, then
// the system's CA bundle file, and reads the whole system trust store only
// when neither verifies it.
//
// crypto/x509 loads the system store by parsing the bundle file and then
// every file of /etc/ssl/certs again: about 30 ms on this machine, which
// every standalone wal-fetch and wal-push paid before its first request
// (the bundle file alone takes about 8 ms, AWS_CA_BUNDLE's few
// certificates nothing). Each set tried is part of what the standard
// verification would trust (the configured roots and the system store
// together), so a chain is accepted exactly when the standard
// verification would accept it; only the cost of finding out changes.
package trust

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Dialer opens TLS connections verified against Roots, then the system
// bundle file, then the whole system store.
type Dialer struct {
	// Roots are the configured roots (AWS_CA_BUNDLE), tried first; nil or
	// empty when none are configured. Certificates may be added until the
	// first dial.
	Roots *x509.CertPool
	// Config is cloned for each connection (minimum version and the like);
	// its RootCAs and verification settings are not used.
	Config *tls.Config
	// Dial opens the TCP connection.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// HandshakeTimeout bounds the TLS handshake; 0 leaves it to ctx.
	HandshakeTimeout time.Duration
}

// DialTLSContext has http.Transport.DialTLSContext's signature.
func (d *Dialer) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	dial := d.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	raw, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{}
	if d.Config != nil {
		cfg = d.Config.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	// The chain and the name are verified below, against each set of roots
	// in turn; the handshake itself still proves the server holds the
	// leaf's key. The name is the one dialled: the state's ServerName is
	// empty for an address, since no SNI is sent for one.
	name, now := cfg.ServerName, cfg.Time
	cfg.InsecureSkipVerify = true
	cfg.RootCAs = nil
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		var t time.Time
		if now != nil {
			t = now()
		}
		return Verify(cs.PeerCertificates, name, t, d.Roots)
	}
	hctx := ctx
	if d.HandshakeTimeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, d.HandshakeTimeout)
		defer cancel()
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// SystemStoreReads counts verifications that needed the whole system
// store: tests check that configured roots spare it.
var SystemStoreReads atomic.Int64

// Verify verifies certs (the leaf first, then what the server sent with
// it) for name at time now (zero: the current time) against roots, the
// system bundle file and the whole system store, in that order. Its error
// is the last set's, as crypto/tls reports one.
func Verify(certs []*x509.Certificate, name string, now time.Time, roots *x509.CertPool) error {
	if len(certs) == 0 {
		return errors.New("tls: the server sent no certificate")
	}
	opts := x509.VerifyOptions{DNSName: name, CurrentTime: now, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	var err error
	for _, set := range []func() *x509.CertPool{
		func() *x509.CertPool { return roots },
		bundleFile,
	} {
		if opts.Roots = set(); opts.Roots == nil {
			continue
		}
		if _, err = certs[0].Verify(opts); err == nil {
			return nil
		}
	}
	SystemStoreReads.Add(1)
	opts.Roots = nil // crypto/x509's own system store, read once per process
	if _, err = certs[0].Verify(opts); err == nil {
		return nil
	}
	return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
}

// bundleFile is the file crypto/x509 reads first for the system store:
// SSL_CERT_FILE when set, else Debian's bundle when it is there (the first
// of crypto/x509's list on Linux). Nil when neither can be read.
var bundleFile = sync.OnceValue(func() *x509.CertPool {
	name := os.Getenv("SSL_CERT_FILE")
	if name == "" {
		name = "/etc/ssl/certs/ca-certificates.crt"
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(data) {
		return nil
	}
	return p
})
