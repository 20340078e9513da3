package fastpath

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFetchClientPackageStaysLight: a small front program calls Fetch
// without starting the rest of walden, so this package must not pull in
// the cloud SDKs, gRPC or Prometheus.
func TestFetchClientPackageStaysLight(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, heavy := range []string{"github.com/aws/", "cloud.google.com/", "google.golang.org/", "github.com/prometheus/", "go.opentelemetry.io/"} {
			if strings.HasPrefix(dep, heavy) {
				t.Errorf("agent/fastpath depends on %s", dep)
			}
		}
	}
}
