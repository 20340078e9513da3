package wal

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/walelog"
)

// Archive is the WAL half of a store: where segments go and how they are encoded.
type Archive struct {
	Store  storage.Store
	Prefix storage.Prefix
	Format blob.Format  // how new objects are written
	Crypt  blob.Crypter // how encrypted objects are read (nil: none)
	Log    *walelog.Logger
	// Workers bounds how many segments are compressed and uploaded at once
	// by one wal-push; memory is about 2 × 16 MiB per worker.
	Workers int
	// RequireEncrypted refuses plaintext objects on fetch: the store is
	// configured for encryption, so a plaintext object was not written by
	// this configuration. AllowPlaintext accepts them anyway, with a
	// warning (a WAL-E archive encryption was added to later).
	RequireEncrypted bool
	AllowPlaintext   bool
	// GapGrace is how old a later segment must be before a missing one
	// counts as a gap; 0 means DefaultGapGrace, negative means at once.
	GapGrace time.Duration
	// ExpectAbsent says a lookup a moment ago found the segment absent
	// (the agent's prefetch): wal-fetch then sends its GET and the gap
	// check's listings at once, one round trip instead of two, as
	// PostgreSQL asks for the segment after the archive's last, twice,
	// at the end of every recovery.
	ExpectAbsent bool
}

func (a *Archive) gapGrace() time.Duration {
	if a.GapGrace == 0 {
		return DefaultGapGrace
	}
	return a.GapGrace
}

// backendLogger is the logger name WAL-E's backend utility module used.
func (a *Archive) backendLogger() string {
	switch a.Prefix.Scheme {
	case "s3":
		return "wal_e.blobstore.s3.s3_util"
	case "gs":
		return "wal_e.blobstore.gs.utils"
	}
	return "wal_e.blobstore.file.file_util"
}

// local is implemented by stores whose lookups cost no network round trip.
type local interface{ Local() bool }

// locate finds the stored object of a WAL file name whatever its codec:
// one listing on remote stores, a few stats on the file store.
func (a *Archive) locate(ctx context.Context, name string) (string, bool, error) {
	base := Dir + name
	if l, ok := a.Store.(local); ok && l.Local() {
		for _, c := range probeOrder(a.Format.Codec) {
			if _, err := a.Store.Head(ctx, base+c.Ext()); err == nil {
				return base + c.Ext(), true, nil
			} else if !storage.IsNotFound(err) {
				return "", false, err
			}
		}
		return "", false, nil
	}
	objs, err := a.Store.List(ctx, base)
	if err != nil {
		return "", false, err
	}
	key, found := a.locateIn(objs, name)
	return key, found, nil
}

// locateIn is locate's choice among objs, a listing that holds every
// stored copy of name (and maybe more).
func (a *Archive) locateIn(objs []storage.Object, name string) (string, bool) {
	base := Dir + name
	have := map[string]bool{}
	for _, o := range objs {
		have[o.Key] = true
	}
	for _, c := range probeOrder(a.Format.Codec) {
		if have[base+c.Ext()] {
			return base + c.Ext(), true
		}
	}
	return "", false
}

// probeOrder puts the configured codec first, then the rest.
func probeOrder(first codec.Codec) []codec.Codec {
	out := []codec.Codec{first}
	for _, c := range codec.All {
		if c.Name() != first.Name() {
			out = append(out, c)
		}
	}
	return out
}

func (a *Archive) fields(action, key, seg string, extra ...walelog.Field) []walelog.Field {
	f := []walelog.Field{walelog.F("action", action), walelog.F("key", key), walelog.F("prefix", a.Prefix.Path), walelog.F("seg", seg)}
	return append(f, extra...)
}

// ErrNotFound means the store holds no object for a requested WAL file.
var ErrNotFound = fmt.Errorf("WAL file not found in the store")

func baseName(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[i+1:]
	}
	return p
}
