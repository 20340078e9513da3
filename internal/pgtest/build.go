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

// WALTags are the tags of the WAL program (the Makefile's WALTAGS): the
// full program's wal-push, wal-fetch and wal-prefetch alone, without GCS.
const WALTags = "walden_wal"

// built is one program, built at most once per test binary.
type built struct {
	once       sync.Once
	tags, name string
	path       string
	err        error
}

var (
	invoked atomic.Bool // lets this package's own tests check it never builds
	full    = &built{tags: BuildTags, name: "walden"}
	walOnly = &built{tags: WALTags, name: "walden-wal"}
)

// get builds b on first use and returns its path.
func (b *built) get(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		invoked.Store(true)
		b.path, b.err = buildWalden(b.tags, b.name)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// BuildWalden builds the walden command once per test binary and returns
// the path of the executable, in a directory the postgres user can read and
// execute from (archive_command and restore_command run as postgres). The
// directory is left for the next run's stale-directory sweep, since no
// single test owns it.
func BuildWalden(t testing.TB) string {
	t.Helper()
	return full.get(t)
}

// BuildWALProgram builds the WAL program (WALTags) once per test binary,
// as BuildWalden builds the full program.
func BuildWALProgram(t testing.TB) string {
	t.Helper()
	return walOnly.get(t)
}

func buildWalden(tags, name string) (string, error) {
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
	out := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-tags", tags, "-o", out, waldenPkg)
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
