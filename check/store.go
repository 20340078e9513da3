package check

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/walden-pg/walden/storage"
)

// ProbeDir holds probe objects. It is outside basebackups_005/ and wal_005/
// so that no WAL-E, WAL-G or walden listing ever mistakes a probe for
// archive content.
const ProbeDir = "walden_check/"

// probeKey names a probe uniquely, so that checks run at once from several
// hosts sharing a prefix never delete each other's probes.
func probeKey() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	if host == "" {
		host = "unknown"
	}
	return fmt.Sprintf("%sprobe-%s-%d-%s", ProbeDir, host, os.Getpid(), randomHex(8))
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics instead on broken systems)
	return hex.EncodeToString(b)
}

// probeContent is random, so a store answering with stale or foreign data
// (a cache, another host's probe) cannot pass the comparison by chance.
func probeContent(key string) []byte {
	return []byte(fmt.Sprintf("walden check probe %s written %s\n%s\n", key, time.Now().UTC().Format(time.RFC3339Nano), randomHex(32)))
}

// probeStore writes, reads back, deletes and re-checks one probe object,
// the four operations archiving and retention need.
func probeStore(ctx context.Context, st storage.Store, url, key string) Result {
	res, _ := probeStoreErr(ctx, st, url, key)
	return res
}

// probeStoreErr is probeStore that also returns the failed operation's
// error, for callers that explain it further.
func probeStoreErr(ctx context.Context, st storage.Store, url, key string) (Result, error) {
	if key == "" {
		key = probeKey()
	}
	want := probeContent(key)
	if err := st.Put(ctx, key, bytes.NewReader(want), int64(len(want)), storage.PutOptions{ContentType: "text/plain"}); err != nil {
		return fail("store", "cannot write to %s: %v", url, err), err
	}
	got, err := readAll(ctx, st, key, 1<<20)
	if err != nil {
		st.Delete(ctx, key) // best effort: the read is the problem reported
		return fail("store", "cannot read back the probe %s from %s: %v", key, url, err), err
	}
	if !bytes.Equal(got, want) {
		st.Delete(ctx, key)
		return fail("store", "the probe %s read back from %s differs from what was written (%d bytes, wrote %d)", key, url, len(got), len(want)), nil
	}
	if err := st.Delete(ctx, key); err != nil {
		return fail("store", "cannot delete the probe %s from %s: %v", key, url, err), err
	}
	switch _, err := st.Head(ctx, key); {
	case err == nil:
		return fail("store", "the probe %s is still in %s after it was deleted", key, url), nil
	case !storage.IsNotFound(err):
		return fail("store", "cannot confirm the probe %s was deleted from %s: %v", key, url, err), err
	}
	return pass("store", "wrote, read and deleted a probe at %s", url), nil
}

// readAll reads at most limit bytes of an object; limit guards against a
// store answering with something far larger than the object can be.
func readAll(ctx context.Context, st storage.Store, key string, limit int64) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}
