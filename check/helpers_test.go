package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/walden-pg/walden/storage"
)

// memStore is an in-memory store whose operations can be made to fail or
// misbehave one at a time.
type memStore struct {
	mu      sync.Mutex
	objs    map[string][]byte
	mod     map[string]time.Time
	putErr  error
	getErr  error
	listErr error
	delErr  error
	headErr error
	corrupt bool // Get answers with other bytes
	sticky  bool // Delete reports success but keeps the object
	deleted []string
}

func newMemStore() *memStore {
	return &memStore{objs: map[string][]byte{}, mod: map[string]time.Time{}}
}

func (m *memStore) add(key, content string, mod time.Time) {
	m.objs[key] = []byte(content)
	m.mod[key] = mod
}

func (m *memStore) Put(ctx context.Context, key string, r io.Reader, size int64, _ storage.PutOptions) error {
	if m.putErr != nil {
		return m.putErr
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key], m.mod[key] = data, time.Now()
	return nil
}

func (m *memStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if m.getErr != nil {
		return nil, m.getErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, storage.ErrNotFound)
	}
	if m.corrupt {
		data = bytes.ToUpper(data)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (m *memStore) Head(ctx context.Context, key string) (storage.Object, error) {
	if m.headErr != nil {
		return storage.Object{}, m.headErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objs[key]
	if !ok {
		return storage.Object{}, fmt.Errorf("head %s: %w", key, storage.ErrNotFound)
	}
	return storage.Object{Key: key, Size: int64(len(data)), Modified: m.mod[key]}, nil
}

func (m *memStore) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	if m.listErr != nil {
		return nil, m.listErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.Object
	for k, v := range m.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, storage.Object{Key: k, Size: int64(len(v)), Modified: m.mod[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (m *memStore) Delete(ctx context.Context, key string) error {
	if m.delErr != nil {
		return m.delErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deleted = append(m.deleted, key)
	if !m.sticky {
		delete(m.objs, key)
	}
	return nil
}

var errBoom = errors.New("boom")

// testKey is an OpenPGP key written as files: the armored public key and
// the armored, unprotected secret key.
type testKey struct {
	fpr, pub, sec string
}

// newTestKey makes an Ed25519/X25519 key, fast enough to make per test.
func newTestKey(t *testing.T) testKey {
	t.Helper()
	e, err := openpgp.NewEntity("check test", "", "check@example.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := testKey{fpr: fmt.Sprintf("%X", e.PrimaryKey.Fingerprint), pub: filepath.Join(dir, "pub.asc"), sec: filepath.Join(dir, "sec.asc")}
	write := func(path, blockType string, serialize func(io.Writer) error) {
		var buf bytes.Buffer
		w, err := armor.Encode(&buf, blockType, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := serialize(w); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(k.pub, openpgp.PublicKeyType, e.Serialize)
	write(k.sec, openpgp.PrivateKeyType, func(w io.Writer) error { return e.SerializePrivate(w, nil) })
	return k
}
