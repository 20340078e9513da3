//go:build walden_wal

package open

import (
	"context"
	"fmt"

	"github.com/walden-pg/walden/config"
	"github.com/walden-pg/walden/storage"
)

// openGCS in the WAL program (cmd/walden built with the walden_wal tag):
// the GCS client and its dependencies were most of a full program's
// start-up, which that program exists to avoid. /usr/bin/walden runs the
// full program for gs:// prefixes, so only a direct run gets here.
func openGCS(_ context.Context, s *config.Settings) (storage.Store, error) {
	return nil, fmt.Errorf("%s: this is walden's WAL program, built without the GCS client; run /usr/bin/walden, which runs the full program for gs:// prefixes", s.Prefix.URL(""))
}
