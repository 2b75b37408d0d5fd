package hostmerge

import (
	"net/netip"
	"testing"

	"github.com/swarmguard/swarmguard/classifier"
)

// BenchmarkDeltaFlow is the host work of one new flow on the packet path:
// start, new evidence, end (emptied every 4096 flows, as a tick would).
func BenchmarkDeltaFlow(b *testing.B) {
	d := NewDelta(0)
	hosts := make([]netip.AddrPort, 1024)
	for i := range hosts {
		hosts[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(1024+i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, r := hosts[i%len(hosts)], hosts[(i*7+1)%len(hosts)]
		flowStart(d, a, r, 6)
		d.PeerEvidence(Host{Addr: a.Addr()}, Host{Addr: r.Addr()}, classifier.EvHandshake, false)
		d.FlowEnd(Host{Addr: a.Addr()}, Host{Addr: r.Addr()}, classifier.P2P, true, 1000, 2000, false)
		if i%4096 == 4095 {
			d.Reset()
		}
	}
}

// BenchmarkMerge is one tick of the merger with 4096 flows' events from a
// worker over 1024 hosts (off the packet path).
func BenchmarkMerge(b *testing.B) {
	m := NewMerger(Config{Model: classifier.DefaultModel()})
	d := NewDelta(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 4096; j++ {
			a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(j >> 8 & 3), byte(j)}), 1000)
			r := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(j >> 4), byte(j * 13)}), uint16(j))
			flowStart(d, a, r, 6)
		}
		m.Merge(int64(i+1)*int64(Tick), d)
	}
}
