package file

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walden-pg/walden/storage"
)

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n > 0 {
		f.n--
		return copy(p, "partial"), nil
	}
	return 0, errors.New("source broke")
}

func TestFailedPutLeavesNoObjectAndNoTemporaryFile(t *testing.T) {
	root := t.TempDir()
	s := New(root)
	err := s.Put(context.Background(), "wal_005/x.lz4", &failingReader{n: 3}, -1, storage.PutOptions{})
	if err == nil {
		t.Fatal("put of a broken source succeeded")
	}
	ents, _ := os.ReadDir(filepath.Join(root, "wal_005"))
	if len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestPutGetListDeleteRoundTrip(t *testing.T) {
	root := t.TempDir()
	s := New(root)
	ctx := context.Background()
	for _, k := range []string{"basebackups_005/b/tar_partitions/part_00000001.tar.lz4", "basebackups_005/a_backup_stop_sentinel.json", "wal_005/1.lz4"} {
		if err := s.Put(ctx, k, strings.NewReader(k), int64(len(k)), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := s.List(ctx, "basebackups_005/")
	if err != nil || len(objs) != 2 || objs[0].Key != "basebackups_005/a_backup_stop_sentinel.json" {
		t.Fatalf("%v %v", objs, err)
	}
	rc, err := s.Get(ctx, "wal_005/1.lz4")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "wal_005/1.lz4" {
		t.Fatalf("got %q", b)
	}
	if _, err := s.Get(ctx, "wal_005/2.lz4"); !storage.IsNotFound(err) {
		t.Fatalf("err = %v", err)
	}
	if err := s.Delete(ctx, "basebackups_005/b/tar_partitions/part_00000001.tar.lz4"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "basebackups_005", "b")); !os.IsNotExist(err) {
		t.Fatal("emptied directories were kept")
	}
	if err := s.Delete(ctx, "wal_005/absent"); err != nil {
		t.Fatalf("deleting a missing object: %v", err)
	}
}

func TestRacingIfAbsentPutsLeaveExactlyOneWinnerAndItsContent(t *testing.T) {
	s := New(t.TempDir())
	ctx := context.Background()
	for round := 0; round < 50; round++ {
		key := "wal_005/" + strings.Repeat("0", 23) + string(rune('A'+round%6)) + ".lz4"
		s.Delete(ctx, key)
		const writers = 4
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			go func(w int) {
				body := strings.Repeat(string(rune('a'+w)), 1<<16)
				errs <- s.Put(ctx, key, strings.NewReader(body), int64(len(body)), storage.PutOptions{IfAbsent: true})
			}(w)
		}
		wins := 0
		for w := 0; w < writers; w++ {
			err := <-errs
			switch {
			case err == nil:
				wins++
			case !storage.IsExists(err):
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d writers won, want exactly 1", round, wins)
		}
		rc, err := s.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if len(b) != 1<<16 || strings.Count(string(b), string(b[0])) != len(b) {
			t.Fatalf("round %d: stored object mixes writers", round)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(s.root, "wal_005"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}
