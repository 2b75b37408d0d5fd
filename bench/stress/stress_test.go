package stress

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/internal/testbin"
)

// The short scenarios (make test): every promise held. The full ones run
// in make reliability and write RELIABILITY.md.
func TestShortScenarios(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, XDP, AF_XDP)")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("needs iperf3 (bench/deps.sh installs it)")
	}
	root, _ := filepath.Abs("../..")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o := Options{Self: testbin.Build(t), Root: root, Log: testWriter{t}, Ctx: ctx}
	for _, name := range Scenarios {
		t.Run(name, func(t *testing.T) {
			r, err := Run(name, o)
			if err != nil {
				t.Skipf("%s: %v", name, err)
			}
			t.Log("\n" + Markdown(r, "test", "go test ./bench/stress"))
			for _, p := range r.Promises {
				if !p.Held {
					t.Errorf("%s: %s: %s", name, p.What, p.Detail)
				}
			}
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
