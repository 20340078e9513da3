package gcs

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/internal/faketest"
)

func TestRacingIfAbsentPutsHaveExactlyOneWinner(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		rounds  int
		writers int
		size    int
	}{
		{"one request", 20, 4, 64 << 10},
		{"chunked", 3, 3, ChunkSize + 1},
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
					errs[i] = s.Put(ctx, key, bytes.NewBuffer(datas[i]), -1, storage.PutOptions{IfAbsent: true})
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
			err := s.Put(ctx, key, bytes.NewReader([]byte("late")), 4, storage.PutOptions{IfAbsent: true})
			if !storage.IsExists(err) || err.Error() != "gcs put "+key+": object already exists" {
				t.Fatalf("late put: %v", err)
			}
		}
	}
	starts := f.Requests(func(r faketest.Seen) bool {
		return r.Method == http.MethodPost && r.Query.Get("ifGenerationMatch") == "0"
	})
	if len(starts) == 0 {
		t.Error("no upload asked for ifGenerationMatch=0")
	}
}

func TestIfAbsentPutWhoseAnswerWasLostIsNotReportedAsExisting(t *testing.T) {
	f := newFake(t)
	s := f.store(t, "gs://"+testBucket+"/p", 3)
	data := faketest.RandomBytes(9, 100<<10)
	// The upload is committed, but its answer is cut: the retry finds
	// the key taken by this very upload.
	f.SetHook(faketest.FailFirst(1, isUploadStart, faketest.ResetAfterHeaders))
	if err := s.Put(context.Background(), "k", bytes.NewReader(data), int64(len(data)), storage.PutOptions{IfAbsent: true}); err != nil {
		t.Fatal(err)
	}
	if got := faketest.ReadAll(t, s, "k"); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}
