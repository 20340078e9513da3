// Command s3server serves an in-memory S3 (gofakes3) on a loopback address,
// for benchmarks of walden's S3 backend. It refuses any other address.
//
// -delay D holds every request for D before it is served, as a distant store
// would: a listing, a HEAD, a PUT and a GET each pay it once. -tls CERTDIR
// serves HTTPS with a self-signed certificate for 127.0.0.1 made at start
// and written to CERTDIR/cert.pem (pgBackRest speaks S3 only over TLS).
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "loopback address to listen on")
	bucket := flag.String("bucket", "bench", "bucket to create")
	delay := flag.Duration("delay", 0, "added before every request is served (e.g. 200ms)")
	certDir := flag.String("tls", "", "serve HTTPS; the self-signed certificate goes to `CERTDIR`/cert.pem")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatal(err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		log.Fatalf("s3server: %s is not a loopback address", host)
	}
	if *delay < 0 {
		log.Fatalf("s3server: -delay %s is negative", *delay)
	}
	backend := s3mem.New()
	if err := backend.CreateBucket(*bucket); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	handler := delayed(faker.Server(), *delay)
	scheme := "http"
	if *certDir != "" {
		cert, err := selfSigned(ip, *certDir)
		if err != nil {
			log.Fatalf("s3server: %v", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	fmt.Fprintf(os.Stdout, "listening on %s://%s, bucket %s, delay %s\n", scheme, ln.Addr(), *bucket, *delay)
	log.Fatal(http.Serve(ln, handler))
}

// delayed holds each request for d before h sees it, so the delay comes
// before the body of a PUT is read and before any byte of an answer.
func delayed(h http.Handler, d time.Duration) http.Handler {
	if d == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		h.ServeHTTP(w, r)
	})
}

// selfSigned makes a certificate for ip, valid for a day, writes it to
// dir/cert.pem for clients to trust, and returns it with its key. The key
// stays in memory.
func selfSigned(ip net.IP, dir string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: ip.String()},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{ip},
		// pgBackRest matches the host only against DNS names (and the
		// common name), never IP addresses.
		DNSNames: []string{ip.String()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeAtomic(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// writeAtomic writes under a temporary name and renames, so a client
// waiting for the file never reads half of it.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}
