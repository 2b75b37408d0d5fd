package hostmerge

import (
	"net/netip"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// A host contacting many peers on as many ports looks like P2P (ratio ~1);
// a horizontal scan has ratio ~0 and a vertical scan > 1.
func TestPortPeerRatioAndFanout(t *testing.T) {
	m := NewMerger(Config{Model: classifier.DefaultModel()})
	d := NewDelta(0)
	for i := 0; i < 40; i++ {
		flowStart(d, ap("10.0.0.1:40000"), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}), uint16(20000+i*7)), 6)
		flowStart(d, ap("10.0.0.2:40000"), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 1, byte(i)}), 22), 6)
		flowStart(d, ap("10.0.0.3:40000"), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 2, 1}), uint16(1+i)), 6)
	}
	m.Merge(int64(time.Second), d)
	s := m.Snapshot()
	p2p, hscan, vscan := s.Host(Host{Addr: netip.MustParseAddr("10.0.0.1")}), s.Host(Host{Addr: netip.MustParseAddr("10.0.0.2")}), s.Host(Host{Addr: netip.MustParseAddr("10.0.0.3")})
	const ppr = classifier.FHostPPR - classifier.FirstHostFeature
	if p2p.Peers < 36 || p2p.Peers > 44 || p2p.X[ppr] < 0.8 {
		t.Fatalf("p2p-like host: peers %d ports %d ppr feature %.2f", p2p.Peers, p2p.Ports, p2p.X[ppr])
	}
	if hscan.X[ppr] > 0.2 || vscan.X[ppr] > 0.2 {
		t.Fatalf("scans scored as p2p-like: horizontal %.2f vertical %.2f", hscan.X[ppr], vscan.X[ppr])
	}
}

// Folding is the same whatever the number and order of deltas.
func TestMergeIsOrderIndependent(t *testing.T) {
	events := func(d *Delta, i int) {
		flowStart(d, ap("10.0.0.1:40000"), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}), 6881), 17)
		d.PeerEvidence(Host{Addr: netip.MustParseAddr("10.0.0.1")}, Host{Addr: netip.AddrFrom4([4]byte{10, 9, 0, byte(i)})}, classifier.EvDHT, i%3 == 0)
		d.FlowEnd(Host{Addr: netip.MustParseAddr("10.0.0.1")}, Host{Addr: netip.AddrFrom4([4]byte{10, 9, 0, byte(i)})}, classifier.P2P, true, uint64(1000*i), 77, false)
	}
	one, many := NewMerger(Config{Model: classifier.DefaultModel()}), NewMerger(Config{Model: classifier.DefaultModel()})
	for tick := 1; tick <= 5; tick++ {
		d := NewDelta(0)
		ds := []*Delta{NewDelta(0), NewDelta(0), NewDelta(0)}
		for i := 0; i < 30; i++ {
			events(d, i+tick*30)
			events(ds[(i*7)%3], i+tick*30)
		}
		now := int64(tick) * int64(Tick)
		one.Merge(now, d)
		many.Merge(now, ds[2], ds[0], ds[1])
	}
	a := one.Snapshot().Host(Host{Addr: netip.MustParseAddr("10.0.0.1")})
	b := many.Snapshot().Host(Host{Addr: netip.MustParseAddr("10.0.0.1")})
	if a != b {
		t.Fatalf("views differ:\n%+v\n%+v", a, b)
	}
	if a.Label != classifier.P2P {
		t.Fatalf("host with 150 answered DHT flows is %v", a.Label)
	}
}

func TestPredictionsExpireAndAreBounded(t *testing.T) {
	m := NewMerger(Config{Model: classifier.DefaultModel(), PredictTTL: time.Minute, MaxPredicted: 3})
	d := NewDelta(0)
	var peers classifier.Peers
	for i := 0; i < 5; i++ {
		peers.Addr[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}), 6881)
	}
	peers.N = 5
	host := netip.MustParseAddr("10.0.0.1")
	d.Predict(Host{Addr: host}, &peers)
	m.Merge(int64(time.Second), d)
	s := m.Snapshot()
	if !s.Predicted(Host{Addr: host}, peers.Addr[0], int64(2*time.Second)) || s.Predicted(Host{Addr: host}, peers.Addr[4], int64(2*time.Second)) {
		t.Fatal("first three predictions should be kept, the rest dropped")
	}
	if m.EvictedPredictions != 2 {
		t.Fatalf("evicted %d", m.EvictedPredictions)
	}
	if s.Predicted(Host{Addr: netip.MustParseAddr("10.0.0.2")}, peers.Addr[0], int64(2*time.Second)) {
		t.Fatal("prediction leaked to another host")
	}
	m.Merge(int64(2*time.Minute), NewDelta(0))
	if m.Snapshot().Predicted(Host{Addr: host}, peers.Addr[0], int64(2*time.Minute)) {
		t.Fatal("prediction outlived its TTL")
	}
}

// TestPublishedViewsNeverChange: a view a worker holds stays as it was
// while later merges publish newer ones for the same host, which the old
// snapshot answers too (views live in place); the snapshot's own fields
// stay as they were.
func TestPublishedViewsNeverChange(t *testing.T) {
	m := NewMerger(Config{Model: classifier.DefaultModel()})
	d := NewDelta(0)
	a := Host{Addr: netip.MustParseAddr("10.0.0.1")}
	flowStart(d, ap("10.0.0.1:1"), ap("10.0.0.2:2"), 6)
	m.Merge(1, d)
	old := m.Snapshot()
	held := old.HostView(a)
	before := *held
	for i := 0; i < 10; i++ {
		flowStart(d, ap("10.0.0.1:1"), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 2), 6)
		m.Merge(int64(i+2)*int64(Tick), d)
	}
	if *held != before {
		t.Fatal("a published view changed")
	}
	if old.Gen != 1 || old.Time != 1 {
		t.Fatalf("the old snapshot is now generation %d at %d", old.Gen, old.Time)
	}
	newest := m.Snapshot().Host(a)
	if newest == before || old.Host(a) != newest {
		t.Fatalf("the old snapshot answers %+v, the newest %+v, first %+v", old.Host(a), newest, before)
	}
	if newest.Flows <= before.Flows {
		t.Fatalf("flows %v after ten more, %v before", newest.Flows, before.Flows)
	}
}

func TestHostsAreBounded(t *testing.T) {
	m := NewMerger(Config{Model: classifier.DefaultModel(), MaxHosts: 100})
	for tick := 0; tick < 30; tick++ {
		d := NewDelta(0)
		for i := 0; i < 50; i++ {
			flowStart(d, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(tick), 0, byte(i)}), 1), ap("10.0.0.2:2"), 6)
		}
		m.Merge(int64(tick)*int64(10*time.Minute), d)
	}
	if m.nhosts > 100 || m.EvictedHosts == 0 {
		t.Fatalf("%d hosts kept, %d evicted", m.nhosts, m.EvictedHosts)
	}
}

// TestAddrHashSpread: the hosts of one subnet spread over the snapshot
// shards and the delta's slots as random keys would (a consecutive /20 in
// 4,096 slots leaves ~1,507 empty if random; the murmur-style hash this
// replaced left 2,444, clustering the probes).
func TestAddrHashSpread(t *testing.T) {
	var shards [numShards]int
	for i := 0; i < 1<<16; i++ {
		shards[shardOf(Host{Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})})]++
	}
	for s, n := range shards {
		if n < 1<<16/numShards*9/10 || n > 1<<16/numShards*11/10 {
			t.Errorf("shard %d holds %d of %d hosts", s, n, 1<<16)
		}
	}
	var slots [4096]int
	for i := 0; i < 4096; i++ {
		slots[addrHash(netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}))&4095]++
	}
	empty := 0
	for _, n := range slots {
		if n == 0 {
			empty++
		}
	}
	if empty > 1650 {
		t.Errorf("%d of 4096 slots empty for 4096 consecutive addresses (random: ~1507)", empty)
	}
}

// flowStart records a flow from a to b on no path.
func flowStart(d *Delta, a, b netip.AddrPort, proto uint8) {
	d.FlowStart(Host{Addr: a.Addr()}, Host{Addr: b.Addr()}, b.Port(), proto)
}
