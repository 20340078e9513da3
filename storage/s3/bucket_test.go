package s3

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/internal/faketest"
)

func TestMissingBucketIsNamedOnEveryPath(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "s3://no-such-bucket/p", 2)
	ctx := context.Background()
	ops := map[string]func() error{
		"list": func() error { _, err := s.List(ctx, "basebackups_005/"); return err },
		"get":  func() error { _, err := s.Get(ctx, "wal_005/x"); return err },
		"head": func() error { _, err := s.Head(ctx, "wal_005/x"); return err },
		"put":  func() error { return s.Put(ctx, "wal_005/x", bytes.NewReader([]byte("x")), 1, storage.PutOptions{}) },
		"put multipart": func() error {
			return s.Put(ctx, "wal_005/x", bytes.NewReader(faketest.RandomBytes(1, PartSize+1)), -1, storage.PutOptions{})
		},
	}
	for name, op := range ops {
		err := op()
		if err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", name, err)
		}
		if storage.IsNotFound(err) {
			t.Errorf("%s: a missing bucket reads as a missing object: %v", name, err)
		}
	}
}
