package file

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/walden-pg/walden/storage"
)

func TestMissingRootIsAnErrorNamingItAndIsNotRecreated(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mnt", "store")
	s := New(root)
	ctx := context.Background()
	check := func(op string, err error) {
		t.Helper()
		var re *RootError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), "file store directory "+root+" does not exist") {
			t.Errorf("%s on a missing root: %v", op, err)
		}
		if storage.IsNotFound(err) {
			t.Errorf("%s on a missing root reads as a missing object: %v", op, err)
		}
	}
	check("put", s.Put(ctx, "wal_005/000000010000000000000001.lz4", strings.NewReader("x"), 1, storage.PutOptions{}))
	_, err := s.Get(ctx, "wal_005/000000010000000000000001.lz4")
	check("get", err)
	_, err = s.Head(ctx, "wal_005/000000010000000000000001.lz4")
	check("head", err)
	_, err = s.List(ctx, "basebackups_005/")
	check("list", err)
	check("delete", s.Delete(ctx, "wal_005/000000010000000000000001.lz4"))
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the missing root was created: %v", err)
	}
	// An existing root: walden creates its own directories below it.
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "basebackups_005/b/tar_partitions/part_00000001.tar.lz4", strings.NewReader("x"), 1, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// A root that is a file is refused too.
	if err := os.WriteFile(root+"2", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = New(root+"2").Put(ctx, "wal_005/x", strings.NewReader("x"), 1, storage.PutOptions{})
	if err == nil || !strings.Contains(err.Error(), "file store directory "+root+"2: not a directory") {
		t.Errorf("put under a file: %v", err)
	}
}

func TestObjectsAre0640AndDirectories0750NarrowedByTheUmask(t *testing.T) {
	for _, c := range []struct {
		umask     int
		file, dir os.FileMode
	}{
		{0o022, 0o640, 0o750},
		{0o002, 0o640, 0o750},
		{0o000, 0o640, 0o750},
		{0o077, 0o600, 0o700},
		{0o027, 0o640, 0o750},
	} {
		old := syscall.Umask(c.umask)
		root := t.TempDir()
		err := New(root).Put(context.Background(), "basebackups_005/b/tar_partitions/part_1.tar.lz4", strings.NewReader("x"), 1, storage.PutOptions{IfAbsent: c.umask == 0o077})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"basebackups_005", "basebackups_005/b", "basebackups_005/b/tar_partitions"} {
			fi, err := os.Stat(filepath.Join(root, d))
			if err != nil || fi.Mode().Perm() != c.dir {
				t.Errorf("umask %03o: %s mode %v, want %v (%v)", c.umask, d, fi.Mode().Perm(), c.dir, err)
			}
		}
		fi, err := os.Stat(filepath.Join(root, "basebackups_005/b/tar_partitions/part_1.tar.lz4"))
		if err != nil || fi.Mode().Perm() != c.file {
			t.Errorf("umask %03o: object mode %v, want %v (%v)", c.umask, fi.Mode().Perm(), c.file, err)
		}
	}
}
