package storage

import (
	"fmt"
	"net/url"
	"strings"
)

// Prefix is a parsed WAL-E storage prefix such as s3://bucket/prod/db1.
type Prefix struct {
	Raw    string // as configured, kept for push-side URLs
	Scheme string // lower-cased: s3, gs, file
	Store  string // bucket (s3, gs); ignored for file
	Path   string // WAL-E's path_prefix: no leading '/', one trailing '/' unless empty
}

// Schemes lists the supported schemes, in the order error messages name them.
var Schemes = []string{"s3", "gs", "file"}

// ParsePrefix parses a prefix URL the way WAL-E does: the scheme alone picks
// the backend, the host is the bucket, and the path loses its leading slashes
// and gains one trailing slash.
func ParsePrefix(raw string) (Prefix, error) {
	i := strings.Index(raw, "://")
	if i <= 0 {
		return Prefix{}, fmt.Errorf("storage prefix %q is not a URL of the form scheme://bucket/path", raw)
	}
	scheme := strings.ToLower(raw[:i])
	switch scheme {
	case "s3", "gs", "file":
	default:
		return Prefix{}, fmt.Errorf("unknown storage prefix scheme %q in %q (supported: s3, gs, file)", scheme, raw)
	}
	u, err := url.Parse(scheme + raw[i:])
	if err != nil {
		return Prefix{}, fmt.Errorf("storage prefix %q: %v", raw, err)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return Prefix{}, fmt.Errorf("storage prefix %q must not carry a user, query or fragment", raw)
	}
	p := Prefix{Raw: raw, Scheme: scheme, Store: u.Host}
	if scheme != "file" && p.Store == "" {
		return Prefix{}, fmt.Errorf("storage prefix %q names no bucket", raw)
	}
	path := strings.TrimLeft(u.Path, "/")
	if path != "" && !strings.HasSuffix(path, "/") {
		path += "/"
	}
	if scheme == "file" && p.Store != "" && !strings.EqualFold(p.Store, "localhost") {
		// A file prefix is a local directory; a host would be silently
		// ignored and the archive written to this machine instead.
		return Prefix{}, fmt.Errorf("file prefix %q names host %q: only file://localhost/PATH or file:///PATH (this machine) are supported", raw, p.Store)
	}
	if scheme == "file" && path == "" {
		return Prefix{}, fmt.Errorf("file prefix %q names no directory", raw)
	}
	p.Path = path
	return p, nil
}

// PushURL is the object URL WAL-E logs on the push side: the raw prefix
// without trailing slashes, then the key.
func (p Prefix) PushURL(key string) string {
	return strings.TrimRight(p.Raw, "/") + "/" + key
}

// RawPath is the URL path of the raw prefix without trailing slashes,
// leading slashes kept as typed: WAL-E named GCS objects on upload by the
// URL path of PushURL(key), which is RawPath() + "/" + key (design.md 8.5).
// gs://b//prod/db1/ gives "//prod/db1" (Path is "prod/db1/"); a prefix
// without a path gives "".
func (p Prefix) RawPath() string {
	raw := strings.TrimRight(p.Raw, "/")
	if i := strings.Index(raw, "://"); i > 0 {
		if u, err := url.Parse(strings.ToLower(raw[:i]) + raw[i:]); err == nil {
			return u.Path
		}
	}
	// Not built by ParsePrefix: the normalised path is all there is.
	return strings.TrimRight("/"+p.Path, "/")
}

// URL is the object URL WAL-E logs on the fetch side and in delete:
// scheme://store/path_prefix+key.
func (p Prefix) URL(key string) string {
	return p.Scheme + "://" + p.Store + "/" + p.Path + key
}

// Key is the logical key K (path_prefix + key) as WAL-E names it in hints.
func (p Prefix) Key(key string) string { return p.Path + key }
