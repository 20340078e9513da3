package main

import (
	"strings"
	"testing"
)

func TestTwoPrefixesLogOneWarningNamingBothAndUseWALEsChoice(t *testing.T) {
	clean(t)
	store := filePrefix(t)
	t.Setenv("WALE_S3_PREFIX", "s3://bucket/path")
	t.Setenv("AWS_REGION", "us-east-1")
	out, errOut, code := walden(t, "backup-list")
	if code != 0 {
		t.Fatalf("backup-list: %d %q", code, errOut)
	}
	if n := strings.Count(errOut, "WARNING"); n != 1 || !strings.Contains(errOut, "WALE_FILE_PREFIX wins over WALE_S3_PREFIX") {
		t.Fatalf("want one warning naming both prefixes, stderr:\n%s", errOut)
	}
	if !strings.HasPrefix(out, "name") {
		t.Fatalf("backup-list of the file store %s printed %q", store, out)
	}
}
