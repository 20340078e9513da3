package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestPrefixPrecedenceFlagsThenVariablesInWALEOrder(t *testing.T) {
	env := map[string]string{"WALE_S3_PREFIX": "s3://b/s3", "WALE_GS_PREFIX": "gs://b/gs", "AWS_REGION": "us-east-1"}
	s, err := Load(envOf(env), Flags{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix.Scheme != "gs" || s.PrefixVar != "WALE_GS_PREFIX" {
		t.Fatalf("got %+v from %s", s.Prefix, s.PrefixVar)
	}
	s, err = Load(envOf(env), Flags{S3Prefix: "file:///tmp/x"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix.Scheme != "file" || s.PrefixVar != "--s3-prefix" {
		t.Fatalf("flag did not win: %+v", s.Prefix)
	}
}

func TestUnknownSchemeNamesTheVariable(t *testing.T) {
	_, err := Load(envOf(map[string]string{"WALE_S3_PREFIX": "wabs://c/p"}), Flags{})
	var ce *Error
	if !errors.As(err, &ce) || ce.Var != "WALE_S3_PREFIX" || !strings.Contains(err.Error(), "wabs") {
		t.Fatalf("err = %v", err)
	}
}

func TestEmptyValueIsAnErrorNamingTheVariable(t *testing.T) {
	_, err := Load(envOf(map[string]string{"WALDEN_COMPRESSION": ""}), Flags{})
	if err == nil || !strings.HasPrefix(err.Error(), "WALDEN_COMPRESSION:") {
		t.Fatalf("err = %v", err)
	}
}

func TestMalformedValuesNameTheirVariable(t *testing.T) {
	cases := map[string]string{
		"WALDEN_COMPRESSION":        "gzip",
		"WALDEN_UPLOAD_CONCURRENCY": "zero",
		"WALDEN_PARTITION_SIZE":     "1 TB",
		"WALDEN_DISK_RATE_LIMIT":    "fast",
		"WALE_RETRIES":              "many",
		"WALDEN_RETAIN":             "forever",
		"WALDEN_LOG_FORMAT":         "xml",
		"AWS_INSTANCE_PROFILE":      "yes",
		"WALE_S3_ENDPOINT":          "ftp://host",
		"WALE_S3_STORAGE_CLASS":     "CHEAP",
	}
	for k, v := range cases {
		_, err := Load(envOf(map[string]string{k: v}), Flags{})
		if err == nil || !strings.HasPrefix(err.Error(), k+":") {
			t.Errorf("%s=%q: err = %v", k, v, err)
		}
	}
}

func TestProgressIntervalDefaultsTo30sAndRejectsNonsense(t *testing.T) {
	s, err := Load(envOf(map[string]string{"WALE_FILE_PREFIX": "file://localhost/tmp/x"}), Flags{})
	if err != nil || s.ProgressInterval != 30*time.Second {
		t.Fatalf("default: %v, %v", s, err)
	}
	s, err = Load(envOf(map[string]string{"WALE_FILE_PREFIX": "file://localhost/tmp/x", "WALDEN_PROGRESS_INTERVAL": "250ms"}), Flags{})
	if err != nil || s.ProgressInterval != 250*time.Millisecond {
		t.Fatalf("250ms: %v, %v", s, err)
	}
	for _, v := range []string{"often", "-1s", "0"} {
		_, err := Load(envOf(map[string]string{"WALDEN_PROGRESS_INTERVAL": v}), Flags{})
		if err == nil || !strings.HasPrefix(err.Error(), "WALDEN_PROGRESS_INTERVAL:") {
			t.Errorf("WALDEN_PROGRESS_INTERVAL=%q: err = %v", v, err)
		}
	}
}

func TestParsePrefixNormalisesPathLikeWALE(t *testing.T) {
	for _, c := range []struct{ raw, path, push string }{
		{"s3://b/prod/db1", "prod/db1/", "s3://b/prod/db1/wal_005/x"},
		{"s3://b/prod/db1/", "prod/db1/", "s3://b/prod/db1/wal_005/x"},
		{"s3://b", "", "s3://b/wal_005/x"},
		{"file://localhost/tmp/t1/store", "tmp/t1/store/", "file://localhost/tmp/t1/store/wal_005/x"},
		{"file:///tmp/t1/store", "tmp/t1/store/", "file:///tmp/t1/store/wal_005/x"},
		{"GS://bucket//double", "double/", "GS://bucket//double/wal_005/x"},
	} {
		s, err := Load(envOf(map[string]string{"WALE_S3_PREFIX": c.raw}), Flags{})
		if err != nil {
			t.Fatalf("%s: %v", c.raw, err)
		}
		if s.Prefix.Path != c.path || s.Prefix.PushURL("wal_005/x") != c.push {
			t.Errorf("%s: path %q push %q", c.raw, s.Prefix.Path, s.Prefix.PushURL("wal_005/x"))
		}
	}
}

func TestS3EndpointForms(t *testing.T) {
	proto, style, host, err := ParseS3Endpoint("http+path://127.0.0.1:9000")
	if err != nil || proto != "http" || style != "path" || host != "127.0.0.1:9000" {
		t.Fatalf("%s %s %s %v", proto, style, host, err)
	}
	for _, bad := range []string{"https://x", "https+path://u:p@x", "https+path://x/p", "https+path://x?q=1"} {
		if _, _, _, err := ParseS3Endpoint(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestSizesAndRetention(t *testing.T) {
	for in, want := range map[string]int64{"10": 10, "4K": 4096, "1MiB": 1 << 20, "2G": 2 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	if r, err := ParseRetention("7"); err != nil || r.Count != 7 {
		t.Fatal(r, err)
	}
	if r, err := ParseRetention("14d"); err != nil || r.Age.Hours() != 14*24 {
		t.Fatal(r, err)
	}
	if _, err := ParseRetention("0"); err == nil {
		t.Fatal("retain 0 accepted")
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	_, err := Load(envOf(map[string]string{"AWS_SECRET_ACCESS_KEY": "s3cr3t", "WALDEN_RETAIN": "bad"}), Flags{})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("err = %v", err)
	}
}

func TestNegativeRetriesAreRefused(t *testing.T) {
	_, err := Load(envOf(map[string]string{"WALE_RETRIES": "-1"}), Flags{})
	var ce *Error
	if !errors.As(err, &ce) || ce.Var != "WALE_RETRIES" || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("err = %v", err)
	}
	s, err := Load(envOf(map[string]string{"WALE_RETRIES": "0"}), Flags{})
	if err != nil || s.Retries != 0 {
		t.Fatalf("WALE_RETRIES=0 (forever): %v %+v", err, s)
	}
}

func TestUnknownSyslogFacilityIsRefusedListingTheValidOnes(t *testing.T) {
	_, err := Load(envOf(map[string]string{"WALE_SYSLOG_FACILITY": "daemon"}), Flags{})
	var ce *Error
	if !errors.As(err, &ce) || ce.Var != "WALE_SYSLOG_FACILITY" {
		t.Fatalf("err = %v", err)
	}
	want := `WALE_SYSLOG_FACILITY: unknown facility "daemon" (valid: user, local0, local1, local2, local3, local4, local5, local6, local7)`
	if err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
	for _, ok := range []string{"user", "local0", "LOCAL7"} {
		if _, err := Load(envOf(map[string]string{"WALE_SYSLOG_FACILITY": ok}), Flags{}); err != nil {
			t.Fatalf("%s refused: %v", ok, err)
		}
	}
}

func TestTwoPrefixesWarnNamingBothAndKeepWALEPrecedence(t *testing.T) {
	s, err := Load(envOf(map[string]string{"WALE_S3_PREFIX": "s3://b/p", "WALE_FILE_PREFIX": "file:///srv/store", "AWS_REGION": "us-east-1"}), Flags{})
	if err != nil {
		t.Fatal(err)
	}
	if s.PrefixVar != "WALE_FILE_PREFIX" {
		t.Fatalf("precedence changed: %s", s.PrefixVar)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "WALE_FILE_PREFIX wins over WALE_S3_PREFIX") {
		t.Fatalf("warnings %q", s.Warnings)
	}
	// A flag overriding its own variable is deliberate: no warning.
	s, err = Load(envOf(map[string]string{"WALE_S3_PREFIX": "s3://b/p", "AWS_REGION": "us-east-1"}), Flags{S3Prefix: "s3://b/other"})
	if err != nil || len(s.Warnings) != 0 || s.PrefixVar != "--s3-prefix" {
		t.Fatalf("flag over its own variable: %v %q %s", err, s.Warnings, s.PrefixVar)
	}
	s, err = Load(envOf(map[string]string{"WALE_S3_PREFIX": "s3://b/p", "AWS_REGION": "us-east-1"}), Flags{})
	if err != nil || len(s.Warnings) != 0 {
		t.Fatalf("one prefix: %v %q", err, s.Warnings)
	}
}
