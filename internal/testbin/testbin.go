// Package testbin (test-only: imported from _test.go files alone, hence
// internal/) builds the swarmguard binary for tests that run it as a
// process (the harness and the end-to-end scripts re-execute it).
package testbin

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Build compiles cmd/swarmguard into the test's temporary directory.
func Build(t testing.TB) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	pkg := filepath.Join(filepath.Dir(here), "..", "..", "cmd", "swarmguard")
	bin := filepath.Join(t.TempDir(), "swarmguard")
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build swarmguard: %v %s", err, out)
	}
	return bin
}
