package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/walden-pg/walden/internal/pgtest"
)

// shippedDeps checks that the Makefile sets tagVar to tags (what the tests
// build with) and builds dist/NAME from ./cmd/walden with it, and returns
// the packages that build links, one per line between newlines.
func shippedDeps(t *testing.T, tagVar, tags, name string) string {
	t.Helper()
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + tagVar + ` := (\S+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatalf("the Makefile sets no %s", tagVar)
	}
	if string(m[1]) != tags {
		t.Fatalf("the Makefile's %s is %q, the tests build with %q", tagVar, m[1], tags)
	}
	if !regexp.MustCompile(`build [^\n]*-tags \$\(` + tagVar + `\)[^\n]*-o dist/` + regexp.QuoteMeta(name) + ` \./cmd/walden\n`).Match(mk) {
		t.Fatalf("the Makefile does not build dist/%s with -tags $(%s)", name, tagVar)
	}
	out, err := exec.Command("go", "list", "-tags", tags, "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	return "\n" + string(out)
}

// TestShippedFullProgramLeavesOutGRPCDirectPath pins the tag the package's
// build uses: without it the GCS client links gRPC DirectPath (xDS and
// envoy's protos), whose initialisation every wal-fetch and wal-push
// without an agent pays, though walden speaks only GCS's JSON API.
func TestShippedFullProgramLeavesOutGRPCDirectPath(t *testing.T) {
	deps := shippedDeps(t, "GOTAGS", pgtest.BuildTags, "walden-core")
	if !strings.Contains(deps, "\ncloud.google.com/go/storage\n") {
		t.Fatal("the full program no longer links the GCS client")
	}
	for _, pkg := range []string{"google.golang.org/grpc/xds/googledirectpath", "google.golang.org/grpc/balancer/rls", "github.com/envoyproxy/"} {
		if strings.Contains(deps, "\n"+pkg) {
			t.Errorf("built as shipped, the full program links %s", pkg)
		}
	}
}

// TestWALProgramLinksNeitherGCSNorTheOtherCommands pins what the WAL
// program (the Makefile's dist/walden-wal) leaves out: its start-up is
// what every wal-push and wal-fetch without an agent pays, and the GCS
// client, the agent with its metrics, base backups and libpq were about
// half of the full program's.
func TestWALProgramLinksNeitherGCSNorTheOtherCommands(t *testing.T) {
	deps := shippedDeps(t, "WALTAGS", pgtest.WALTags, "walden-wal")
	// What wal-push and wal-fetch need must still be there.
	for _, pkg := range []string{"github.com/walden-pg/walden/storage/s3", "github.com/walden-pg/walden/storage/file",
		"github.com/walden-pg/walden/wal", "github.com/walden-pg/walden/gpg", "github.com/walden-pg/walden/walelog"} {
		if !strings.Contains(deps, "\n"+pkg+"\n") {
			t.Errorf("the WAL program does not link %s", pkg)
		}
	}
	for _, pkg := range []string{"cloud.google.com/", "google.golang.org/grpc", "github.com/prometheus/",
		"github.com/walden-pg/walden/agent\n", "github.com/walden-pg/walden/agent/fastpath/server", "github.com/walden-pg/walden/basebackup",
		"github.com/walden-pg/walden/storage/gcs", "github.com/jackc/", "github.com/go-co-op/gocron"} {
		if strings.Contains(deps, "\n"+pkg) {
			t.Errorf("the WAL program links %s", strings.TrimSpace(pkg))
		}
	}
}
