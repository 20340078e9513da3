package deadline

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
)

// CertProblem reports a TLS certificate the client refused: the server's
// host (from the request URL, when err carries one) and the verification
// error. Such a failure never fixes itself by retrying, so the backends
// classify it as permanent and report it at once. unknownCA is true when
// the certificate's issuer is simply not trusted, which a CA file fixes.
func CertProblem(err error) (host, cause string, unknownCA, ok bool) {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var sys x509.SystemRootsError
	switch {
	case errors.As(err, &cv):
		cause = cv.Err.Error()
		unknownCA = errors.As(cv.Err, &ua) || errors.As(cv.Err, &sys)
	case errors.As(err, &ua):
		cause, unknownCA = ua.Error(), true
	case errors.As(err, &sys):
		cause, unknownCA = sys.Error(), true
	case errors.As(err, &he):
		cause = he.Error()
	case errors.As(err, &ci):
		cause = ci.Error()
	default:
		return "", "", false, false
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			host = u.Host
		}
	}
	return host, cause, unknownCA, true
}
