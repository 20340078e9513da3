package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const waldenPkg = "github.com/walden-pg/walden/cmd/walden"

// BuildTags are the tags the Makefile builds the full program with (its
// GOTAGS), so that the end-to-end tests run what the package ships.
const BuildTags = "disable_grpc_modules"

var build struct {
	once    sync.Once
	invoked atomic.Bool // lets this package's own tests check it never builds
	path    string
	err     error
}

// BuildWalden builds the walden command once per test binary and returns
// the path of the executable, in a directory the postgres user can read and
// execute from (archive_command and restore_command run as postgres). The
// directory is left for the next run's stale-directory sweep, since no
// single test owns it.
func BuildWalden(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.invoked.Store(true)
		build.path, build.err = buildWalden()
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

func buildWalden() (string, error) {
	sweepStale()
	// go test puts its own toolchain first in PATH for the test binary.
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("pgtest: build walden: %w", err)
	}
	dir, err := makeScratch("bin", "")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "walden")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-tags", BuildTags, "-o", out, waldenPkg)
	if msg, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("pgtest: go build %s: %w\n%s", waldenPkg, err, msg)
	}
	// The mode go build gives depends on the umask; postgres must execute it.
	if err := os.Chmod(out, 0o755); err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return out, nil
}
