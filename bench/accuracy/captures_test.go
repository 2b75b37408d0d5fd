package accuracy_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/swarmguard/swarmguard/bench/capture"
)

// The real-client captures' must-show (testdata/captures, made by
// bench/capture/capture.sh with transmission-daemon):
//   - >= 95% of BitTorrent peer flows with >= 4 payload packets are p2p,
//   - every BitTorrent host is p2p,
//   - no flow that is not BitTorrent and no host that took part in no
//     BitTorrent flow is p2p (the BitTorrent hosts' HTTPS, SSH, DNS included).
func TestRealClientCaptures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "captures", "*.pcap"))
	if len(files) < 3 {
		t.Fatalf("need the plain, encrypted and hidden captures, have %v", files)
	}
	for _, res := range classifyAll(t, files, 2) {
		peers, peersP2P := 0, 0
		btEndpoint := map[netip.Addr]bool{}
		for _, f := range res.Flows {
			a, b := netip.MustParseAddrPort(f.A), netip.MustParseAddrPort(f.B)
			truth := capture.Label(a, b)
			if truth == "bittorrent" && f.PayloadPackets > 0 {
				btEndpoint[a.Addr()], btEndpoint[b.Addr()] = true, true
			}
			if truth != "bittorrent" && f.Label == "p2p" {
				t.Errorf("%s: normal flow %s %s %s is p2p (p=%.3f)", res.Pcap, f.Proto, f.A, f.B, f.P)
			}
			if capture.IsBTHost(a.Addr()) && capture.IsBTHost(b.Addr()) && f.PayloadPackets >= 4 {
				peers++
				if f.Label == "p2p" {
					peersP2P++
				} else {
					t.Logf("%s: peer flow %s %s %s is %s (p=%.3f)", res.Pcap, f.Proto, f.A, f.B, f.Label, f.P)
				}
			}
		}
		if peers == 0 || float64(peersP2P) < 0.95*float64(peers) {
			t.Errorf("%s: %d of %d peer flows p2p, want >= 95%%", res.Pcap, peersP2P, peers)
		}
		for _, h := range res.Hosts {
			a := netip.MustParseAddr(h.Host)
			switch {
			case capture.IsBTHost(a) && h.Label != "p2p":
				t.Errorf("%s: BitTorrent host %s is %s (p=%.3f)", res.Pcap, h.Host, h.Label, h.P)
			case !btEndpoint[a] && h.Label == "p2p":
				t.Errorf("%s: normal host %s is p2p (p=%.3f)", res.Pcap, h.Host, h.P)
			}
		}
		t.Logf("%s: %d/%d peer flows p2p", res.Pcap, peersP2P, peers)
	}
}
