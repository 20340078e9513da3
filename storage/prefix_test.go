package storage

import "testing"

func TestRawPathKeepsLeadingSlashesAsTyped(t *testing.T) {
	for raw, want := range map[string]string{
		"gs://b":             "",
		"gs://b/":            "",
		"gs://b//":           "",
		"gs://b/prod/db1":    "/prod/db1",
		"gs://b/prod/db1/":   "/prod/db1",
		"GS://b//prod/db1":   "//prod/db1",
		"gs://b//prod//db1/": "//prod//db1",
		"gs://b/p//":         "/p",
	} {
		p, err := ParsePrefix(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.RawPath(); got != want {
			t.Errorf("%s: RawPath() = %q, want %q", raw, got, want)
		}
		// The written name of key k is the URL path of PushURL(k).
		if got, push := p.RawPath()+"/k", p.PushURL("k"); push[len(push)-len(got):] != got {
			t.Errorf("%s: %q is not the path of %q", raw, got, push)
		}
	}
	if got := (Prefix{Path: "prod/db1/"}).RawPath(); got != "/prod/db1" {
		t.Errorf("without Raw: %q", got)
	}
}

func TestFilePrefixRefusesAnotherHost(t *testing.T) {
	for _, ok := range []string{"file:///var/lib/store", "file://localhost/var/lib/store", "file://LOCALHOST/var/lib/store"} {
		if _, err := ParsePrefix(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	_, err := ParsePrefix("file://otherhost/var/lib/store")
	if err == nil {
		t.Fatal("file://otherhost/... was accepted")
	}
	if want := `file prefix "file://otherhost/var/lib/store" names host "otherhost": only file://localhost/PATH or file:///PATH (this machine) are supported`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}
