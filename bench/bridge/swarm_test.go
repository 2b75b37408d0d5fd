// Package bridge holds the end-to-end test of the live bridge with a real
// BitTorrent swarm (swarm.sh); this Go test runs it in make test.
package bridge

import (
	"os"
	"os/exec"
	"testing"

	"github.com/swarmguard/swarmguard/internal/testbin"
)

// TestEncryptedSwarmThroughBridge runs swarm.sh: transmission-daemon peers
// (MSE required) on both sides of a swarmguard bridge get banned within
// 10 s of their first peer flow and stop, while HTTPS and scp downloads
// across the bridge finish byte-identical and nothing of theirs is banned.
func TestEncryptedSwarmThroughBridge(t *testing.T) { runSwarm(t, "") }

// TestEncryptedSwarmInVXLANThroughBridge is the same swarm and downloads
// inside a VXLAN overlay whose underlay crosses the bridge: the program
// opens VXLAN, so the peers' inner addresses are banned and their flows
// dropped in the kernel, and the HTTPS and scp downloads in the same tunnel
// finish byte-identical.
func TestEncryptedSwarmInVXLANThroughBridge(t *testing.T) { runSwarm(t, "vxlan") }

func runSwarm(t *testing.T, tunnel string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, XDP)")
	}
	for _, b := range []string{"transmission-daemon", "opentracker", "mktorrent", "nginx", "sshd", "curl", "bridge"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (bash bench/deps.sh)", b)
		}
	}
	bin := testbin.Build(t)
	cmd := exec.Command("bash", "swarm.sh", t.TempDir())
	cmd.Env = append(os.Environ(), "SG="+bin, "SG_TUNNEL="+tunnel)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("swarm.sh: %v", err)
	}
}
