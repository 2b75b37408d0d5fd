package accuracy_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane"
	"github.com/swarmguard/swarmguard/shard"
)

func replayFile(t *testing.T, path string, rep []netip.Addr) *shard.Result {
	t.Helper()
	r, err := dataplane.ClassifyFile(path, shard.Options{Worker: shard.Config{Model: classifier.DefaultModel()}, Reputation: rep})
	if err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	return r
}

// A flow to a peer another box proved (its reputation) is decided earlier:
// each real-client capture replayed with its p2p flows' peers reputed
// takes fewer packets to its p2p decisions in all, more of its flows are
// decided earlier than later, every p2p flow stays p2p, and no flow to
// another address changes its label. (A few flows are decided a packet or
// few later: the reputed peer's evidence changes the host's context the
// flow is scored with; counted and logged.)
func TestReputationDecidesEarlier(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "captures", "*.pcap"))
	before, after, earlier, later := 0, 0, 0, 0
	for _, path := range paths {
		plain := replayFile(t, path, nil)
		peers := map[netip.Addr]bool{}
		var reps []netip.Addr
		for _, f := range plain.Flows {
			if f.Label == "p2p" {
				b := netip.MustParseAddrPort(f.B).Addr()
				if !peers[b] {
					peers[b] = true
					reps = append(reps, b)
				}
			}
		}
		if len(reps) == 0 {
			continue
		}
		with := replayFile(t, path, reps)
		if len(with.Flows) != len(plain.Flows) {
			t.Fatalf("%s: %d flows with reputation, %d without", path, len(with.Flows), len(plain.Flows))
		}
		for i, f := range plain.Flows {
			g := with.Flows[i]
			if f.A != g.A || f.B != g.B {
				t.Fatalf("%s flow %d: %s-%s against %s-%s", path, i, f.A, f.B, g.A, g.B)
			}
			touches := peers[netip.MustParseAddrPort(f.B).Addr()] || peers[netip.MustParseAddrPort(f.A).Addr()]
			if !touches && f.Label != g.Label {
				t.Fatalf("%s flow %s-%s, no reputed peer: %s became %s", path, f.A, f.B, f.Label, g.Label)
			}
			if f.Label != "p2p" || f.DecidedAt == 0 {
				continue
			}
			if g.Label != "p2p" || g.DecidedAt == 0 {
				t.Fatalf("%s flow %s-%s: p2p at packet %d without reputation, %s at %d with", path, f.A, f.B, f.DecidedAt, g.Label, g.DecidedAt)
			}
			before += int(f.DecidedAt)
			after += int(g.DecidedAt)
			switch {
			case g.DecidedAt < f.DecidedAt:
				earlier++
			case g.DecidedAt > f.DecidedAt:
				later++
				t.Logf("%s flow %s-%s: decided at packet %d without reputation, %d with", filepath.Base(path), f.A, f.B, f.DecidedAt, g.DecidedAt)
			}
		}
	}
	if after >= before || earlier <= later {
		t.Fatalf("packets to the p2p decisions %d without reputation, %d with; %d flows earlier, %d later", before, after, earlier, later)
	}
	t.Logf("packets to the p2p decisions: %d without reputation, %d with; %d flows earlier, %d later", before, after, earlier, later)
}
