package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func s3Server(t *testing.T) (*s3mem.Backend, string) {
	t.Helper()
	be := s3mem.New()
	if err := be.CreateBucket("acme-pg-archive"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(be, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(srv.Close)
	return be, strings.TrimPrefix(srv.URL, "http://")
}

func TestWalPushAndFetchThroughS3(t *testing.T) {
	clean(t)
	be, host := s3Server(t)
	t.Setenv("WALE_S3_PREFIX", "s3://acme-pg-archive/prod/db1")
	t.Setenv("WALE_S3_ENDPOINT", "http+path://"+host)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDWALDENTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "walden-secret-never-logged")
	t.Setenv("WALE_RETRIES", "3")
	seg := filepath.Join(t.TempDir(), "00000001000000A70000003C")
	data := walSegment(t, "00000001000000A70000003C", "s3 wal ")
	os.WriteFile(seg, data, 0o600)
	_, errOut, code := walden(t, "wal-push", seg)
	if code != 0 || !strings.Contains(errOut, "key=s3://acme-pg-archive/prod/db1/wal_005/00000001000000A70000003C.lz4 prefix=prod/db1/") {
		t.Fatalf("%d %s", code, errOut)
	}
	if _, err := be.HeadObject("acme-pg-archive", "prod/db1/wal_005/00000001000000A70000003C.lz4"); err != nil {
		t.Fatalf("object not at WAL-E's key: %v", err)
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, errOut, code := walden(t, "wal-fetch", "-p0", "00000001000000A70000003C", dest); code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatal("fetched bytes differ")
	}
	// Not found on S3: INFO, as WAL-E, then complete, exit 1.
	_, errOut, code = walden(t, "wal-fetch", "00000002.history", filepath.Join(t.TempDir(), "H"))
	if code != 1 || !strings.Contains(errOut, "wal_e.blobstore.s3.s3_util INFO     MSG: could no longer locate object") {
		t.Fatalf("%d %s", code, errOut)
	}
	if strings.Contains(errOut, "walden-secret-never-logged") {
		t.Fatal("secret in the log")
	}
}

func TestUnreachableS3IsOneClearErrorWithoutSecrets(t *testing.T) {
	clean(t)
	t.Setenv("WALE_S3_PREFIX", "s3://acme-pg-archive/prod/db1")
	t.Setenv("WALE_S3_ENDPOINT", "http+path://127.0.0.1:1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDWALDENTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "walden-secret-never-logged")
	t.Setenv("WALE_RETRIES", "2")
	seg := filepath.Join(t.TempDir(), "000000010000000000000001")
	os.WriteFile(seg, []byte("x"), 0o600)
	_, errOut, code := walden(t, "wal-push", seg)
	if code != 1 || strings.Count(errOut, "ERROR") != 1 || strings.Contains(errOut, "walden-secret-never-logged") {
		t.Fatalf("%d %s", code, errOut)
	}
}

func TestWalPushAndFetchThroughGCSKeepLeadingSlashNames(t *testing.T) {
	clean(t)
	srv, emulator := gcsFake(t, "acme-gcs")
	t.Setenv("STORAGE_EMULATOR_HOST", emulator)
	t.Setenv("WALE_GS_PREFIX", "gs://acme-gcs/prod/db1")
	t.Setenv("WALE_RETRIES", "3")
	seg := filepath.Join(t.TempDir(), "000000010000000000000007")
	data := walSegment(t, "000000010000000000000007", "gcs wal ")
	os.WriteFile(seg, data, 0o600)
	if _, errOut, code := walden(t, "wal-push", seg); code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	objs, _, err := srv.ListObjectsWithOptions("acme-gcs", fakestorage.ListOptions{})
	if err != nil || len(objs) != 1 || objs[0].Name != "/prod/db1/wal_005/000000010000000000000007.lz4" {
		t.Fatalf("objects %v %v", objs, err)
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, errOut, code := walden(t, "wal-fetch", "-p0", "000000010000000000000007", dest); code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatal("fetched bytes differ")
	}
	_, errOut, code := walden(t, "wal-fetch", "00000002.history", filepath.Join(t.TempDir(), "H"))
	if code != 1 || !strings.Contains(errOut, "wal_e.blobstore.gs.utils WARNING  MSG: could no longer locate object") {
		t.Fatalf("%d %s", code, errOut)
	}
}
