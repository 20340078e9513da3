package gcs

// design.md 8.5: WAL-E wrote objects under the URL path of the raw prefix
// (gs://b//prod/db1 -> "//prod/db1/..."), but listed "/" + path_prefix
// ("/prod/db1/..."). walden writes the first form and reads both.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/internal/faketest"
)

func (f *fakeGCS) create(name string, content []byte) {
	f.srv.CreateObject(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: name},
		Content:     content,
	})
}

func (f *fakeGCS) content(t *testing.T, name string) []byte {
	t.Helper()
	o, err := f.srv.GetObject(testBucket, name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return o.Content
}

func sortedNames(t *testing.T, f *fakeGCS) []string {
	names := f.names(t)
	sort.Strings(names)
	return names
}

func TestDoubleSlashPrefixWritesTheRawPathForm(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"//prod/db1/", 3)
	data := faketest.RandomBytes(10, 300<<10)
	faketest.Put(t, s, "wal_005/000000010000000000000001.lzo", data)
	if got, want := fmt.Sprint(f.names(t)), "[//prod/db1/wal_005/000000010000000000000001.lzo]"; got != want {
		t.Fatalf("physical names %s, want %s", got, want)
	}
	if got := faketest.ReadAll(t, s, "wal_005/000000010000000000000001.lzo"); !bytes.Equal(got, data) {
		t.Error("content differs")
	}
	o, err := s.Head(context.Background(), "wal_005/000000010000000000000001.lzo")
	if err != nil || o.Size != int64(len(data)) || o.Key != "wal_005/000000010000000000000001.lzo" {
		t.Errorf("head = %+v, %v", o, err)
	}
}

func TestDoubleSlashPrefixReadsAndListsBothForms(t *testing.T) {
	f := newFake(t)
	f.create("//prod/db1/wal_005/000000010000000000000001.lzo", []byte("written"))
	f.create("/prod/db1/wal_005/000000010000000000000002.lzo", []byte("listed"))
	// Under both names: the written form is the one read.
	f.create("//prod/db1/wal_005/000000010000000000000003.lzo", []byte("written 3"))
	f.create("/prod/db1/wal_005/000000010000000000000003.lzo", []byte("listed 3"))
	f.create("/prod/db1/basebackups_005/sentinel.json", []byte("{}"))
	s := f.store(t, "gs://"+testBucket+"//prod/db1", 3)
	ctx := context.Background()

	before := f.Count()
	for key, want := range map[string]string{
		"wal_005/000000010000000000000001.lzo": "written",
		"wal_005/000000010000000000000002.lzo": "listed",
		"wal_005/000000010000000000000003.lzo": "written 3",
	} {
		if got := faketest.ReadAll(t, s, key); string(got) != want {
			t.Errorf("%s: got %q, want %q", key, got, want)
		}
		o, err := s.Head(ctx, key)
		if err != nil || o.Key != key || o.Size != int64(len(want)) || o.Modified.IsZero() {
			t.Errorf("head %s = %+v, %v", key, o, err)
		}
	}
	// Only the key that exists in the listed form alone costs a second
	// request, for Get and for Head.
	if n := f.Count() - before; n != 3+3+2 {
		t.Errorf("%d requests for three gets and heads, want 8", n)
	}

	before = f.Count()
	l, err := s.List(ctx, "wal_005/")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range l {
		got = append(got, fmt.Sprintf("%s:%d", o.Key, o.Size))
	}
	want := "[wal_005/000000010000000000000001.lzo:7 wal_005/000000010000000000000002.lzo:6 wal_005/000000010000000000000003.lzo:9]"
	if fmt.Sprint(got) != want {
		t.Errorf("list = %v, want %s", got, want)
	}
	var prefixes []string
	for _, r := range f.Requests(func(r faketest.Seen) bool { return r.Method == http.MethodGet && r.Query.Has("prefix") }) {
		prefixes = append(prefixes, r.Query.Get("prefix"))
	}
	if fmt.Sprint(prefixes) != "[//prod/db1/wal_005/ /prod/db1/wal_005/]" || f.Count()-before != 2 {
		t.Errorf("list prefixes %q, want the written form then the listed one", prefixes)
	}
	if all, err := s.List(ctx, ""); err != nil || len(all) != 4 {
		t.Errorf("list of everything = %v, %v; want 4 objects", all, err)
	}

	// Delete removes the key under both names.
	if err := s.Delete(ctx, "wal_005/000000010000000000000003.lzo"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "wal_005/000000010000000000000002.lzo"); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(sortedNames(t, f)), "[//prod/db1/wal_005/000000010000000000000001.lzo /prod/db1/basebackups_005/sentinel.json]"; got != want {
		t.Errorf("after delete: %s, want %s", got, want)
	}
	if _, err := s.Get(ctx, "wal_005/000000010000000000000003.lzo"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if _, err := s.Head(ctx, "wal_005/000000010000000000000002.lzo"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("head after delete: %v", err)
	}
}

func TestDoubleSlashPrefixResumesTheFormItFound(t *testing.T) {
	f := newFake(t)
	data := faketest.RandomBytes(11, 3<<20)
	f.create("/prod/db1/wal_005/seg", data)
	s := f.store(t, "gs://"+testBucket+"//prod/db1", 3)
	// The first download of the listed form is cut halfway.
	half := int64(len(data) / 2)
	f.SetHook(faketest.FailFirst(1, func(r *http.Request) bool {
		return isDownload(r) && r.URL.Path == "/"+testBucket+"//prod/db1/wal_005/seg"
	}, faketest.CutAt(func(*http.Request) int64 { return half })))
	if got := faketest.ReadAll(t, s, "wal_005/seg"); !bytes.Equal(got, data) {
		t.Fatal("content differs after resume")
	}
	var paths []string
	for _, r := range f.Requests(func(r faketest.Seen) bool { return r.Method == http.MethodGet && r.Query.Get("alt") != "json" }) {
		paths = append(paths, r.Path+" "+r.Header.Get("Range"))
	}
	want := fmt.Sprintf("[/%[1]s///prod/db1/wal_005/seg  /%[1]s//prod/db1/wal_005/seg  /%[1]s//prod/db1/wal_005/seg bytes=%[2]d-]", testBucket, half)
	if fmt.Sprint(paths) != want {
		t.Errorf("downloads %q, want %s", paths, want)
	}
}

func TestDoubleSlashPrefixMissingEverywhereIsErrNotFound(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"//p", 3)
	ctx := context.Background()
	faketest.AssertMissing(t, s, "wal_005/nope")
	if err := s.Delete(ctx, "wal_005/nope"); err != nil {
		t.Errorf("delete: %v", err)
	}
	// Each form once, none retried, and the bucket once (a missing
	// bucket must not read as a missing object).
	if n := f.Count(); n != 7 {
		t.Errorf("%d requests, want 7", n)
	}
}

// A trailing double slash makes the written form a prefix of the listed
// one: gs://b/p// writes "/p/k" but lists "/p//k".
func TestTrailingDoubleSlashKeepsTheFormsApart(t *testing.T) {
	f := newFake(t)
	f.create("/p//wal_005/listed", []byte("l"))
	f.create("/p//wal_005/both", []byte("l"))
	f.create("/p/wal_005/both", []byte("ww"))
	s := f.store(t, "gs://"+testBucket+"/p//", 3)
	faketest.Put(t, s, "wal_005/written", []byte("w"))
	if !f.exists("/p/wal_005/written") {
		t.Fatalf("physical names %v, want /p/wal_005/written", f.names(t))
	}
	l, err := s.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range l {
		keys = append(keys, fmt.Sprintf("%s:%d", o.Key, o.Size))
	}
	// A key under both names is the written one, as for Get.
	if fmt.Sprint(keys) != "[wal_005/both:2 wal_005/listed:1 wal_005/written:1]" {
		t.Errorf("list = %v", keys)
	}
	if got := faketest.ReadAll(t, s, "wal_005/listed"); string(got) != "l" {
		t.Errorf("got %q", got)
	}
	if got := faketest.ReadAll(t, s, "wal_005/both"); string(got) != "ww" {
		t.Errorf("got %q", got)
	}
}

// Without double slashes there is one name: one request per operation.
func TestSingleFormPrefixMakesOneRequestPerOperation(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/prod/db1/", 3)
	ctx := context.Background()
	faketest.Put(t, s, "k", []byte("x"))
	if got := fmt.Sprint(f.names(t)); got != "[/prod/db1/k]" {
		t.Fatalf("physical names %s", got)
	}
	ops := []struct {
		name  string
		match func(*http.Request) bool
		op    func() error
	}{
		{"get", isDownload, func() error { _, err := s.Get(ctx, "k"); return err }},
		{"get missing", isDownload, func() error { _, err := s.Get(ctx, "nope"); return nil2(err) }},
		{"head", isAttrs, func() error { _, err := s.Head(ctx, "k"); return err }},
		{"head missing", isAttrs, func() error { _, err := s.Head(ctx, "nope"); return nil2(err) }},
		{"list", isList, func() error { _, err := s.List(ctx, ""); return err }},
		{"delete", isDelete, func() error { return s.Delete(ctx, "k") }},
	}
	for _, o := range ops {
		before := f.Count()
		if err := o.op(); err != nil {
			t.Errorf("%s: %v", o.name, err)
		}
		if n := f.Count() - before; n != 1 {
			t.Errorf("%s made %d requests, want 1", o.name, n)
		}
	}
}

// nil2 accepts ErrNotFound as the expected answer.
func nil2(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err == nil {
		return errors.New("found a missing object")
	}
	return err
}
