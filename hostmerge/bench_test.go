package hostmerge

import (
	"fmt"
	"net/netip"
	"runtime"
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

// scaleHost is the i-th host of a population: addresses spread over a /8
// of subscribers, each with a remote peer of its own.
func scaleHost(i int) (Host, Host) {
	a := Host{Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
	r := Host{Addr: netip.AddrFrom4([4]byte{172, 16 + byte(i>>16&15), byte(i >> 8), byte(i)})}
	return a, r
}

// BenchmarkMergeAtScale is one 100 ms tick at 10 k, 100 k and 1 M active
// hosts where 4096 flows start and end among known hosts (8192 of them
// touched, every shard dirty): the merge and the publish of its snapshot.
// heap-B/host is the merger's memory per host after the population.
func BenchmarkMergeAtScale(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			m := NewMerger(Config{Model: classifier.DefaultModel(), MaxHosts: n + n/8, NewPerMerge: 1 << 16})
			d := NewDelta(1 << 17)
			now := int64(1e18)
			// Every host twice: an initiator with its remote as responder.
			for i := 0; i < n/2; i++ {
				a, r := scaleHost(i)
				d.FlowStart(a, r, uint16(6881+i%1000), 6)
				if i%(1<<15) == 1<<15-1 || i == n/2-1 {
					now += int64(Tick)
					m.Merge(now, d)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			perHost := float64(after.HeapAlloc-before.HeapAlloc) / float64(m.Hosts())
			rng := uint64(1)
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				for range 4096 {
					rng = rng*6364136223846793005 + 1442695040888963407
					a, r := scaleHost(int(rng>>33) % (n / 2))
					d.FlowStart(a, r, 6881, 6)
					d.FlowEnd(a, r, classifier.Normal, true, 1000, 20000, false)
				}
				now += int64(Tick)
				b.StartTimer()
				m.Merge(now, d)
			}
			b.ReportMetric(float64(m.Hosts()), "hosts")
			b.ReportMetric(perHost, "heap-B/host")
		})
	}
}

// BenchmarkHostView is the packet path's host lookup in a snapshot of
// 100 k hosts (random known hosts).
func BenchmarkHostView(b *testing.B) {
	const n = 100_000
	m := NewMerger(Config{Model: classifier.DefaultModel(), MaxHosts: n + n/8, NewPerMerge: 1 << 16})
	d := NewDelta(1 << 17)
	now := int64(1e18)
	for i := 0; i < n/2; i++ {
		a, r := scaleHost(i)
		d.FlowStart(a, r, 6881, 6)
		if i%(1<<15) == 1<<15-1 || i == n/2-1 {
			now += int64(Tick)
			m.Merge(now, d)
		}
	}
	s := m.Snapshot()
	keys := make([]Host, 1<<14)
	for i := range keys {
		keys[i], _ = scaleHost((i * 7919) % (n / 2))
	}
	var sum float32
	for i := 0; b.Loop(); i++ {
		sum += s.HostView(keys[i&(len(keys)-1)]).P
	}
	_ = sum
}
