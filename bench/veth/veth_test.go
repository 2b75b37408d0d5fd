package veth

import (
	"os"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/internal/testbin"
)

// The harness must count right: at a low rate nothing is lost, so every
// packet sent is delivered or counted as dropped (by reason).
func TestHarnessCountsEveryPacket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, XDP, AF_XDP)")
	}
	rows, err := Run(Options{Self: testbin.Build(t), Duration: time.Second, Rate: 20000, Flows: 256, Hosts: 8,
		Configs: []string{"devmap", "null-1w", "sg-1w-bypass"}, Sizes: []string{"64"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + Markdown(rows))
	for _, r := range rows {
		if r.Sent < 10000 || r.Lost != 0 {
			t.Errorf("%s: sent %d, delivered %d, dropped %d: %d unaccounted", r.Config, r.Sent, r.Delivered, r.Dropped, r.Lost)
		}
	}
}
