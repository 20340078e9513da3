package basebackup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walden-pg/walden/internal/syncbuf"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/file"
	"github.com/walden-pg/walden/walelog"
)

func testLogger() (*walelog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return walelog.New(walelog.Options{Stderr: buf, Destinations: []string{"stderr"}}), buf
}

// testStore is a file store in a temporary directory, with the prefix that
// names it.
func testStore(t *testing.T) (storage.Store, storage.Prefix, string) {
	t.Helper()
	dir := t.TempDir()
	p, err := storage.ParsePrefix("file://localhost" + dir)
	if err != nil {
		t.Fatal(err)
	}
	return file.New(dir), p, dir
}

// putKeys writes objects with the given keys (content = key) and mtimes
// one second apart in the order given.
func putKeys(t *testing.T, st storage.Store, dir string, keys ...string) {
	t.Helper()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, k := range keys {
		if err := st.Put(context.Background(), k, strings.NewReader(k), int64(len(k)), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Second)
		if err := os.Chtimes(filepath.Join(dir, k), mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

// listKeys returns every key in the store.
func listKeys(t *testing.T, st storage.Store) []string {
	t.Helper()
	objs, err := st.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}

func fixtureStore(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../testdata/fixtures/wal-e/basic/store")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func putOpts() storage.PutOptions { return storage.PutOptions{} }

// syncBuffer collects log output written from several goroutines.
type syncBuffer = syncbuf.Buffer
