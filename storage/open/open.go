// Package open picks and builds the backend a configured prefix names.
package open

import (
	"context"
	"fmt"

	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/file"
)

// Store opens the store of s.Prefix. No network round trip happens here.
func Store(ctx context.Context, s *config.Settings) (storage.Store, error) {
	if err := s.RequirePrefix(); err != nil {
		return nil, err
	}
	p := s.Prefix
	switch p.Scheme {
	case "s3", "gs":
		return nil, fmt.Errorf("%s backend is not built yet", p.Scheme)
	default:
		return file.New("/" + p.Path), nil
	}
}
