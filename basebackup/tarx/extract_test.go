package tarx

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type entry struct {
	name, link string
	typ        byte
	body       string
	mode       int64
}

func tarOf(t *testing.T, format tar.Format, es ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	mt := time.Date(2026, 11, 24, 5, 47, 51, 0, time.UTC)
	for _, e := range es {
		mode := e.mode
		if mode == 0 {
			mode = 0o600
			if e.typ == tar.TypeDir {
				mode = 0o700
			}
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: int64(len(e.body)), ModTime: mt, Format: format}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func extract(t *testing.T, dir string, o Options, streams ...[]byte) error {
	t.Helper()
	if o.UID == 0 && o.GID == 0 {
		o.UID, o.GID = -1, -1
	}
	e, err := New(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, s := range streams {
		if _, err := e.Extract(context.Background(), bytes.NewReader(s)); err != nil {
			return err
		}
	}
	return e.Finish()
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPaxAndGNUStreamsRoundTripWithLongNamesLinksAndRootEntry(t *testing.T) {
	long := strings.Repeat("d", 60) + "/" + strings.Repeat("f", 70) + "/" + strings.Repeat("x", 90) // > 100 chars, components too
	for _, format := range []tar.Format{tar.FormatPAX, tar.FormatGNU} {
		t.Run(format.String(), func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			os.Mkdir(data, 0o755)
			stream := tarOf(t, format,
				entry{name: "/", typ: tar.TypeDir, mode: 0o700},
				entry{name: "base/", typ: tar.TypeDir},
				entry{name: "base/1/", typ: tar.TypeDir},
				entry{name: "base/1/1234", typ: tar.TypeReg, body: "relation"},
				entry{name: "base/1/hard", typ: tar.TypeLink, link: "base/1/1234"},
				entry{name: "pg_wal", typ: tar.TypeSymlink, link: "/mnt/wal"},
				entry{name: long, typ: tar.TypeReg, body: "deep"},
				entry{name: "PG_VERSION", typ: tar.TypeReg, body: "15\n", mode: 0o640},
			)
			if err := extract(t, data, Options{}, stream); err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Stat(data); fi.Mode().Perm() != 0o700 {
				t.Errorf("root mode %v: the / entry must apply to the data directory", fi.Mode())
			}
			if got := readFile(t, filepath.Join(data, long)); got != "deep" {
				t.Errorf("long name content %q", got)
			}
			if l, _ := os.Readlink(filepath.Join(data, "pg_wal")); l != "/mnt/wal" {
				t.Errorf("symlink -> %q", l)
			}
			a, _ := os.Stat(filepath.Join(data, "base/1/1234"))
			b, _ := os.Stat(filepath.Join(data, "base/1/hard"))
			if !os.SameFile(a, b) {
				t.Error("hard link is not the same file")
			}
			fi, _ := os.Stat(filepath.Join(data, "PG_VERSION"))
			if fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(time.Date(2026, 11, 24, 5, 47, 51, 0, time.UTC)) {
				t.Errorf("PG_VERSION mode %v mtime %v", fi.Mode(), fi.ModTime())
			}
			if _, err := os.Lstat(filepath.Join(dir, "PG_VERSION")); err == nil {
				t.Error("wrote outside the data directory")
			}
		})
	}
}

func TestRootEntrySpellings(t *testing.T) {
	for _, n := range []string{"/", "", ".", "./"} {
		if got, err := Clean(n); err != nil || got != "." {
			t.Errorf("Clean(%q) = %q, %v", n, got, err)
		}
	}
	if got, _ := Clean("./base//1/./2"); got != "base/1/2" {
		t.Errorf("Clean = %q", got)
	}
}

func TestPathTraversalIsRefused(t *testing.T) {
	for _, bad := range []string{"../evil", "base/../../evil", "/etc/passwd", "a/../../b"} {
		if _, err := Clean(bad); err == nil {
			t.Errorf("Clean(%q) accepted", bad)
		}
	}
	cases := map[string][][]entry{
		"dotdot":            {{{name: "../escaped", typ: tar.TypeReg, body: "x"}}},
		"absolute":          {{{name: "/escaped", typ: tar.TypeReg, body: "x"}}},
		"through symlink":   {{{name: "out", typ: tar.TypeSymlink, link: ".."}, {name: "out/escaped", typ: tar.TypeReg, body: "x"}}},
		"through abs link":  {{{name: "out", typ: tar.TypeSymlink, link: "/tmp"}, {name: "out/escaped", typ: tar.TypeReg, body: "x"}}},
		"link in partition": {{{name: "out", typ: tar.TypeSymlink, link: "../"}}, {{name: "out/escaped", typ: tar.TypeReg, body: "x"}}},
		"hard link out":     {{{name: "h", typ: tar.TypeLink, link: "../escaped"}}},
	}
	for name, parts := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			os.Mkdir(data, 0o700)
			var streams [][]byte
			for _, p := range parts {
				streams = append(streams, tarOf(t, tar.FormatPAX, p...))
			}
			if err := extract(t, data, Options{}, streams...); err == nil {
				t.Error("extraction succeeded")
			}
			if _, err := os.Lstat(filepath.Join(dir, "escaped")); err == nil {
				t.Error("a file was written outside the data directory")
			}
		})
	}
}

func TestHardLinkToAnotherPartitionIsMadeAtFinish(t *testing.T) {
	data := t.TempDir()
	p1 := tarOf(t, tar.FormatPAX, entry{name: "b", typ: tar.TypeLink, link: "a"})
	p2 := tarOf(t, tar.FormatPAX, entry{name: "a", typ: tar.TypeReg, body: "shared"})
	if err := extract(t, data, Options{}, p1, p2); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(data, "b")); got != "shared" {
		t.Fatalf("b = %q", got)
	}
	// A target that never comes is an error, not a silent gap.
	data2 := t.TempDir()
	if err := extract(t, data2, Options{}, p1); err == nil {
		t.Fatal("dangling hard link accepted")
	}
}

func TestKeptConfigIsNotOverwrittenAndDeferredFileComesLast(t *testing.T) {
	data := t.TempDir()
	os.WriteFile(filepath.Join(data, "postgresql.conf"), []byte("mine"), 0o600)
	stream := tarOf(t, tar.FormatPAX,
		entry{name: "postgresql.conf", typ: tar.TypeReg, body: "theirs"},
		entry{name: "pg_hba.conf", typ: tar.TypeReg, body: "hba"},
		entry{name: "global/pg_control", typ: tar.TypeReg, body: "control"},
	)
	e, err := New(data, Options{UID: -1, GID: -1,
		Keep:  func(r string) bool { return r == "postgresql.conf" || r == "pg_hba.conf" },
		Defer: func(r string) bool { return r == "global/pg_control" }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Extract(context.Background(), bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "global/pg_control")); err == nil {
		t.Fatal("deferred file written before Finish")
	}
	if err := e.Finish(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(data, "postgresql.conf")); got != "mine" {
		t.Errorf("postgresql.conf overwritten: %q", got)
	}
	if got := readFile(t, filepath.Join(data, "pg_hba.conf")); got != "hba" {
		t.Errorf("pg_hba.conf (absent before) = %q", got)
	}
	if got := readFile(t, filepath.Join(data, "global/pg_control")); got != "control" {
		t.Errorf("pg_control = %q", got)
	}
}

func TestTablespaceMembersGoThroughTheLink(t *testing.T) {
	dir := t.TempDir()
	data, ts := filepath.Join(dir, "data"), filepath.Join(dir, "ts")
	os.MkdirAll(filepath.Join(data, "pg_tblspc"), 0o700)
	os.Mkdir(ts, 0o700)
	os.Symlink(ts, filepath.Join(data, "pg_tblspc", "16384"))
	stream := tarOf(t, tar.FormatPAX,
		entry{name: "pg_tblspc/16384/", typ: tar.TypeDir, mode: 0o700},
		entry{name: "pg_tblspc/16384/PG_15_202209061/5/16385", typ: tar.TypeReg, body: "ts data"},
	)
	if err := extract(t, data, Options{Tablespaces: map[string]string{"16384": ts}}, stream); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(ts, "PG_15_202209061/5/16385")); got != "ts data" {
		t.Fatalf("tablespace file = %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(data, "pg_tblspc", "16384")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the tablespace link was replaced")
	}
}

func TestExistingSymlinkIsReplacedNotFollowed(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o700)
	os.WriteFile(filepath.Join(dir, "victim"), []byte("keep"), 0o600)
	os.Symlink(filepath.Join(dir, "victim"), filepath.Join(data, "f"))
	if err := extract(t, data, Options{}, tarOf(t, tar.FormatPAX, entry{name: "f", typ: tar.TypeReg, body: "new"})); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "victim")); got != "keep" {
		t.Fatalf("wrote through a symlink: %q", got)
	}
	if got := readFile(t, filepath.Join(data, "f")); got != "new" {
		t.Fatalf("f = %q", got)
	}
}
