package hostmerge

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
)

// floodDelta is a tick of a random-source flood: n new hosts, one flow each.
func floodDelta(d *Delta, tick, n int) {
	for i := range n {
		j := tick*n + i
		src := Host{Addr: netip.AddrFrom4([4]byte{10, 96 + byte(j>>16&15), byte(j >> 8), byte(j)})}
		dst := Host{Addr: netip.AddrFrom4([4]byte{10, 112 + byte(j>>16&15), byte(j >> 8), byte(j)})}
		d.FlowStart(src, dst, uint16(j), 17)
	}
}

// BenchmarkMergeFloodTick is one 100 ms tick of a flood of new source
// addresses (20,000 flows, 40,000 new hosts offered, 4,096 created) into a
// merger at its host bound (32 k, and bench stress hosts --full's 128 k):
// the time must stay well under the tick.
func BenchmarkMergeFloodTick(b *testing.B) {
	for _, max := range []int{1 << 15, 1 << 17} {
		b.Run(fmt.Sprintf("max_hosts=%d", max), func(b *testing.B) {
			m := NewMerger(Config{Model: classifier.DefaultModel(), MaxHosts: max})
			d := NewDelta(1 << 16)
			now := int64(1e18)
			tick := 0
			// Fill to the bound first: the flood meets a full table.
			for m.Hosts() < max {
				d.Reset()
				floodDelta(d, tick, 20000)
				tick++
				now += int64(100 * time.Millisecond)
				m.Merge(now, d)
			}
			for b.Loop() {
				b.StopTimer()
				d.Reset()
				floodDelta(d, tick, 20000)
				tick++
				now += int64(100 * time.Millisecond)
				b.StartTimer()
				m.Merge(now, d)
			}
			b.ReportMetric(float64(m.Hosts()), "hosts")
		})
	}
}

// A flood of one-flow sources at the host bound evicts its own hosts, not
// the real ones: a host with many flows, and one labelled p2p, stay.
func TestFloodEvictsFloodHostsFirst(t *testing.T) {
	m := NewMerger(Config{Model: classifier.DefaultModel(), MaxHosts: 4096})
	d := NewDelta(1 << 16)
	now := int64(1e18)
	real := Host{Addr: netip.MustParseAddr("192.0.2.10")}
	for i := range 50 {
		d.FlowStart(real, Host{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})}, uint16(6881+i), 6)
	}
	m.Merge(now, d)
	floodTicks(t, m, d, now, func(tick int) {
		if v := m.Snapshot().HostView(real); v.Flows == 0 {
			t.Fatalf("tick %d: the real host was evicted by the flood", tick)
		}
	})
}

// floodTicks merges 20 ticks of a flood of one-flow sources (3,000 flows
// a tick) into m, whose bound is 4,096 hosts, after now; it fails the test
// when the merger is over its bound, and calls after at the end of each.
func floodTicks(t *testing.T, m *Merger, d *Delta, now int64, after func(tick int)) {
	t.Helper()
	for tick := range 20 {
		d.Reset()
		floodDelta(d, tick, 3000)
		now += int64(100 * time.Millisecond)
		m.Merge(now, d)
		if m.Hosts() > 4096 {
			t.Fatalf("tick %d: %d hosts over the bound", tick, m.Hosts())
		}
		after(tick)
	}
}

// A quiet subscriber (one flow in the long window, idle since) is a host
// of the subscribers' networks (Config.Local): at the bound, the flood of
// remote sources goes first, and it stays. Without Local it is as
// evictable as a flood host, and the flood evicts it.
func TestFloodKeepsQuietSubscribers(t *testing.T) {
	quiet := Host{Addr: netip.MustParseAddr("192.168.7.20")}
	for _, local := range []bool{true, false} {
		cfg := Config{Model: classifier.DefaultModel(), MaxHosts: 4096}
		if local {
			cfg.Local = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}
		}
		m := NewMerger(cfg)
		d := NewDelta(1 << 16)
		now := int64(1e18)
		d.FlowStart(quiet, Host{Addr: netip.MustParseAddr("198.51.100.9")}, 443, 6)
		m.Merge(now, d)
		kept := true
		floodTicks(t, m, d, now, func(int) { kept = kept && m.Snapshot().HostView(quiet).Flows > 0 })
		if kept != local {
			t.Fatalf("local networks set: %v; the quiet subscriber kept through the flood: %v", local, kept)
		}
	}
}
