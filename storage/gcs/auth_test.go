package gcs

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/api/option"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/internal/faketest"
)

// Outside the emulator the bounded transport sits beneath the library's
// authentication: every request must still carry the credentials.
func TestRequestsAreAuthenticatedThroughTheBoundedTransport(t *testing.T) {
	f := newFake(t)
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"walden-test-token","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokens.Close)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", writeServiceAccount(t, tokens.URL+"/token"))
	proxy := f.proxy.Listener.Addr().String()
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	p, _ := storage.ParsePrefix("gs://" + testBucket + "/p")
	s, err := New(context.Background(), p, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.copts = append(s.copts, option.WithEndpoint("http://"+proxy+"/storage/v1/"))
	data := faketest.RandomBytes(3, 1000)
	if err := s.Put(context.Background(), "k", bytes.NewReader(data), int64(len(data)), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	seen := f.Requests(func(faketest.Seen) bool { return true })
	if len(seen) == 0 {
		t.Fatal("no request reached the service")
	}
	for _, r := range seen {
		if got := r.Header.Get("Authorization"); !strings.HasSuffix(got, "walden-test-token") {
			t.Errorf("%s %s: Authorization %q", r.Method, r.Path, got)
		}
	}
}
