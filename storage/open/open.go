// Package open picks and builds the backend a configured prefix names.
package open

import (
	"context"

	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/file"
	"github.com/walden-pg/walden/storage/s3"
)

// Store opens the store of s.Prefix. No network round trip happens here.
func Store(ctx context.Context, s *config.Settings) (storage.Store, error) {
	if err := s.RequirePrefix(); err != nil {
		return nil, err
	}
	p := s.Prefix
	switch p.Scheme {
	case "s3":
		return s3.New(ctx, p, s.S3, s.Retries)
	case "gs":
		return openGCS(ctx, s)
	default:
		return file.New("/" + p.Path), nil
	}
}
