package main

import (
	"context"

	"github.com/walden-pg/walden/blob"
	"github.com/walden-pg/walden/codec"
	"github.com/walden-pg/walden/gpg"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/open"
	"github.com/walden-pg/walden/wal"
)

func (a *app) store(ctx context.Context) (storage.Store, error) {
	return open.Store(ctx, a.settings)
}

// crypter returns the configured encryption, or nil when none is configured.
// A configured key that cannot be used is an error: never plaintext instead.
func (a *app) crypter() (blob.Crypter, error) {
	c, err := gpg.New(a.settings.GPG)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, nil
	}
	return c, nil
}

// format is how new objects are written.
func (a *app) format() (blob.Format, error) {
	c, err := codec.ByName(a.settings.Compression)
	if err != nil {
		return blob.Format{}, err
	}
	cr, err := a.crypter()
	if err != nil {
		return blob.Format{}, err
	}
	return blob.Format{Codec: c, Crypt: cr}, nil
}

func (a *app) archive(ctx context.Context) (*wal.Archive, error) {
	st, err := a.store(ctx)
	if err != nil {
		return nil, err
	}
	f, err := a.format()
	if err != nil {
		return nil, err
	}
	return &wal.Archive{Store: st, Prefix: a.settings.Prefix, Format: f, Crypt: f.Crypt, Log: a.log, Workers: a.settings.UploadConcurrency}, nil
}
