package bpf

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// BenchmarkXDPPath is the XDP program's cost per packet by path, through
// BPF_PROG_RUN with repeat over one fixed 64-byte frame (no generator, no
// veth: the noise-free figure), beside the bare baselines the veth harness
// compares with: a devmap redirect program and a count-and-drop program.
// The kernel times the runs; ns/op is its figure per packet.
func BenchmarkXDPPath(b *testing.B) {
	o := load(b)
	if err := o.SetPeerPort(1, 1); err != nil {
		b.Fatal(err)
	}
	host, peer, other := netip.MustParseAddrPort("10.0.0.5:40000"), netip.MustParseAddrPort("10.0.0.9:51413"), netip.MustParseAddrPort("10.0.0.6:443")
	normal := netip.MustParseAddrPort("10.0.0.7:8443")
	o.Ban(peer.Addr(), Monotonic()+uint64(time.Hour))
	o.TouchBans()
	o.SetBypass(key(host, normal, 17), Forward)
	bench, err := LoadBench()
	if err != nil {
		b.Skip(err)
	}
	defer bench.Close()
	bench.SetForward(1, 1)
	run := func(b *testing.B, p *ebpf.Program, pkt []byte, want uint32) {
		const repeat = 1 << 16
		var per time.Duration
		n := 0
		for b.Loop() {
			ret, d, err := p.Benchmark(pkt, repeat, nil)
			if err != nil {
				b.Fatal(err)
			}
			if ret != want {
				b.Fatalf("action %d, want %d", ret, want)
			}
			per += d
			n++
		}
		b.ReportMetric(float64(per.Nanoseconds())/float64(n), "ns/packet")
	}
	fresh := func() {
		o.Configure(Bridge, 1, time.Second, 0)
		o.Beat()
	}
	b.Run("devmap-baseline", func(b *testing.B) { run(b, bench.Forward(), frame(host, other, 17), xdpRedirect) })
	b.Run("lookup-baseline", func(b *testing.B) { run(b, bench.Lookup(), frame(host, other, 17), xdpRedirect) })
	b.Run("drop-baseline", func(b *testing.B) { run(b, bench.Sink(), frame(host, other, 17), xdpDrop) })
	b.Run("ban-drop", func(b *testing.B) { fresh(); run(b, o.Program(), frame(peer, host, 17), xdpDrop) })
	b.Run("bypass-forward", func(b *testing.B) { fresh(); run(b, o.Program(), frame(host, normal, 17), xdpRedirect) })
	// No socket is bound in a test run: the program counts xsk_missing and
	// forwards, the to-socket path's work plus a redirect.
	b.Run("to-worker", func(b *testing.B) { fresh(); run(b, o.Program(), frame(host, other, 17), xdpRedirect) })
	b.Run("fail-open", func(b *testing.B) {
		fresh()
		o.objs.Heartbeat.Put(uint32(0), Monotonic()-uint64(2*time.Second))
		run(b, o.Program(), frame(host, other, 17), xdpRedirect)
	})
}
