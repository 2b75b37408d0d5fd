package accuracy_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/swarmguard/swarmguard/bench/accuracy"
	"github.com/swarmguard/swarmguard/bench/capture"
)

// The real-client captures' must-show (testdata/captures, made by
// bench/capture/capture.sh: Transmission swarms plain, encrypted and hidden,
// a qBittorrent hidden swarm, a hidden swarm of six different clients, a
// Transmission swarm inside a VXLAN overlay, and busy normal hosts with
// peer-like fan-out):
//   - every BitTorrent peer flow with >= 4 payload packets is p2p,
//   - >= 99.9% of the BitTorrent payload bytes are in flows labelled p2p,
//   - every BitTorrent host is p2p,
//   - no flow that is not BitTorrent and no host that took part in no
//     BitTorrent flow is p2p (the BitTorrent hosts' HTTPS, SSH, DNS, the
//     relay, resolver, crawler, voice, video and game hosts): 0 bytes.
func TestRealClientCaptures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "captures", "*.pcap"))
	want := map[string]bool{"plain.pcap": true, "encrypted.pcap": true, "hidden.pcap": true, "hidden-lt.pcap": true, "hidden-mix.pcap": true, "vxlan-swarm.pcap": true, "busy.pcap": true}
	for _, f := range files {
		delete(want, filepath.Base(f))
	}
	if len(want) > 0 {
		t.Fatalf("captures missing: %v", want)
	}
	truth := func(_, _ string, a, b netip.AddrPort, _ uint16) string { return capture.Label(a, b) }
	for _, res := range classifyAll(t, files, 2) {
		tl := accuracy.TallyResult(res, truth, nil, nil)
		for _, f := range res.Flows {
			a, b := netip.MustParseAddrPort(f.A), netip.MustParseAddrPort(f.B)
			bt := capture.Label(a, b) == "bittorrent"
			if !bt && f.Label == "p2p" {
				t.Errorf("%s: normal flow %s %s %s is p2p (p=%.3f, %v)", res.Pcap, f.Proto, f.A, f.B, f.P, f.Reasons)
			}
			if bt && f.PayloadPackets >= 4 && f.Label != "p2p" {
				t.Errorf("%s: peer flow %s %s %s (%d payload packets, %d bytes) is %s (p=%.3f, %v)", res.Pcap, f.Proto, f.A, f.B, f.PayloadPackets, f.Bytes, f.Label, f.P, f.Reasons)
			}
		}
		if tl.BTBytes > 0 && tl.BTByteShare() < 0.999 {
			t.Errorf("%s: %.3f%% of %d BitTorrent payload bytes in p2p flows, want >= 99.9%%", res.Pcap, 100*tl.BTByteShare(), tl.BTBytes)
		}
		if tl.OtherBytesP2P != 0 || tl.OtherHostsP2P != 0 {
			t.Errorf("%s: %d normal bytes in p2p flows, %d normal hosts p2p", res.Pcap, tl.OtherBytesP2P, tl.OtherHostsP2P)
		}
		for _, h := range res.Hosts {
			if a := netip.MustParseAddr(h.Host); capture.IsBTHost(a) && h.Label != "p2p" && res.Pcap != "busy.pcap" {
				t.Errorf("%s: BitTorrent host %s is %s (p=%.3f)", res.Pcap, h.Host, h.Label, h.P)
			}
		}
		if res.Pcap == "busy.pcap" && (tl.BTFlows != 0 || tl.OtherFlows < 200) {
			t.Errorf("busy.pcap: %d BitTorrent flows, %d normal flows: not the busy normal capture", tl.BTFlows, tl.OtherFlows)
		}
		t.Logf("%s: %d/%d BitTorrent flows p2p, %.4f%% of BitTorrent bytes; %d normal flows, none p2p", res.Pcap, tl.BTFlowsP2P, tl.BTFlows, 100*tl.BTByteShare(), tl.OtherFlows)
	}
}
