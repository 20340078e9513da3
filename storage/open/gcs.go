//go:build !walden_wal

package open

import (
	"context"

	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/storage"
	"github.com/walden-pg/walden/storage/gcs"
)

func openGCS(ctx context.Context, s *config.Settings) (storage.Store, error) {
	return gcs.New(ctx, s.Prefix, s.GCSCredentialsFile, s.Retries)
}
