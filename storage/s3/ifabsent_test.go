package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/internal/faketest"
)

// conditionalWrites makes the fake honour If-None-Match: * on
// CompleteMultipartUpload as S3 does (gofakes3 checks it on PutObject
// only): a complete that finds the key taken is refused with 412 and
// creates nothing. Every conditional write (PutObject too) is serialised,
// so the check and the write are one step, as in S3.
func conditionalWrites(f *fakeS3) faketest.Hook {
	var mu sync.Mutex
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.Header.Get("If-None-Match") != "*" {
			return false
		}
		complete := r.Method == http.MethodPost && has(r, "uploadId")
		if !complete && !isPut(r) {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if _, err := f.backend.HeadObject(testBucket, objectKey(r)); complete && err == nil {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusPreconditionFailed)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>`)
			return true
		}
		next.ServeHTTP(w, r)
		return true
	}
}

func TestRacingIfAbsentPutsHaveExactlyOneWinner(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.SetHook(conditionalWrites(f))
	s := f.store(t, "s3://"+testBucket+"/p", 3)
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		rounds  int
		writers int
		size    int
		known   bool
	}{
		{"single PutObject", 20, 4, 64 << 10, true},
		{"multipart", 3, 3, PartSize + 1, false},
	} {
		for round := 0; round < c.rounds; round++ {
			key := fmt.Sprintf("wal_005/%s-%d", c.name, round)
			datas := make([][]byte, c.writers)
			errs := make([]error, c.writers)
			var wg sync.WaitGroup
			for i := range datas {
				datas[i] = faketest.RandomBytes(byte(10*round+i), c.size)
				wg.Add(1)
				go func() {
					defer wg.Done()
					size := int64(-1)
					if c.known {
						size = int64(c.size)
					}
					errs[i] = s.Put(ctx, key, bytes.NewBuffer(datas[i]), size, storage.PutOptions{IfAbsent: true})
				}()
			}
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Fatalf("%s round %d: writers %d and %d both won", c.name, round, winner, i)
				case err == nil:
					winner = i
				case !storage.IsExists(err):
					t.Fatalf("%s round %d: writer %d: %v", c.name, round, i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("%s round %d: nobody won: %v", c.name, round, errs)
			}
			if got := faketest.ReadAll(t, s, key); !bytes.Equal(got, datas[winner]) {
				t.Fatalf("%s round %d: stored content is not the winner's", c.name, round)
			}
			// A later create-if-absent is refused too, and changes nothing.
			err := s.Put(ctx, key, bytes.NewReader([]byte("late")), 4, storage.PutOptions{IfAbsent: true})
			if !storage.IsExists(err) || err.Error() != "s3 put "+key+": object already exists" {
				t.Fatalf("late put: %v", err)
			}
		}
	}
	completes := f.Requests(func(r faketest.Seen) bool { return r.Method == http.MethodPost && r.Query["uploadId"] != nil })
	if len(completes) == 0 {
		t.Fatal("no multipart upload was completed")
	}
	for _, r := range completes {
		if r.Header.Get("If-None-Match") != "*" {
			t.Fatalf("CompleteMultipartUpload without If-None-Match: *: %v", r.Header)
		}
	}
	assertNoPendingUploads(t, s)
}
