package shard

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/hostmerge"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// An undecided flow that goes idle leaves the table at the first tick after
// its idle limit, whatever the table's size, and its flow-end evidence (an
// unanswered SYN) is in the host snapshot that tick publishes.
func TestIdleFlowLeavesWithinOneTick(t *testing.T) {
	const idle = 2 * time.Second
	for _, capacity := range []int{64, 1 << 16} {
		e := NewEngine(EngineConfig{Worker: Config{Model: classifier.DefaultModel(), Flows: TableConfig{Capacity: capacity, TCPIdle: idle, UDPIdle: idle}}})
		w := e.Workers()[0]
		var left int64
		w.Leave = func(f *Flow, why Reason, h classifier.HostFeatures) {
			if why != Expired {
				t.Errorf("flow left %v, want expired", why)
			}
			left = w.now
		}
		src := netip.MustParseAddr("10.0.0.1")
		t0 := int64(1_700_000_000_000_000_000)
		tick := int64(hostmerge.Tick)
		// A SYN nobody answers, then nothing: undecided until it leaves.
		syn := tcpFrame(src, netip.MustParseAddr("10.0.0.2"), 40000, 22, 0x02)
		if v := w.Packet(packet.LinkEthernet, syn, t0); v != Pass {
			t.Fatal("SYN dropped")
		}
		if w.table.Stats.Active != 1 {
			t.Fatalf("active %d", w.table.Stats.Active)
		}
		var gone int64
		for now := t0 - t0%tick + tick; now < t0+10*int64(idle); now += tick {
			w.now = now
			e.Tick(now)
			if w.table.Stats.Active == 0 {
				gone = now
				break
			}
		}
		if gone == 0 || gone-t0 > int64(idle)+tick {
			t.Fatalf("capacity %d: flow left %v after its last packet, want within idle %v plus one tick", capacity, time.Duration(gone-t0), idle)
		}
		if left == 0 {
			t.Fatal("Leave not called")
		}
		if v := e.Merger().Snapshot().Host(hostmerge.Host{Addr: src}); v.Unanswered < 1 {
			t.Errorf("capacity %d: host view after the tick has %.2f unanswered SYNs, want 1", capacity, v.Unanswered)
		}
		if _, fs := e.Stats(); fs.Expired != 1 || fs.Active != 0 {
			t.Errorf("engine table stats %+v, want 1 expired, 0 active", fs)
		}
	}
}

// tcpFrame is an untagged Ethernet/IPv4/TCP frame without payload.
func tcpFrame(src, dst netip.Addr, sport, dport uint16, flags uint8) []byte {
	b := make([]byte, 14+20+20)
	b[12], b[13] = 0x08, 0x00
	ip := b[14:]
	ip[0], ip[3], ip[8], ip[9] = 0x45, 40, 64, 6
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	tcp := ip[20:]
	tcp[0], tcp[1], tcp[2], tcp[3] = byte(sport>>8), byte(sport), byte(dport>>8), byte(dport)
	tcp[12], tcp[13] = 5<<4, flags
	return b
}

// The re-decision pass runs in bounded steps and looks at every flow of a
// turned host exactly once, also for a host that turns mid-pass.
func TestRedecidePassInSteps(t *testing.T) {
	w := NewWorker(Config{Model: classifier.DefaultModel(), Flows: TableConfig{Capacity: 1 << 16}})
	add := func(host netip.Addr, n int) {
		for i := range n {
			m := packet.Meta{Src: packet.AddrWords(host), Dst: packet.AddrWords(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)})), SrcPort: 40000, DstPort: 50000, Proto: 6}
			var k Key
			k.Set(&m)
			w.table.Lookup(&k, k.Hash(), 0) // unknown: rescored when its host turns
		}
	}
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	add(a, 3000)
	add(b, 2000)
	steps := w.table.Buckets() / redecideChunk
	if steps < 4 {
		t.Fatalf("table of %d buckets: too small to test steps", w.table.Buckets())
	}
	w.turn(hostmerge.Host{Addr: a})
	for range steps / 2 {
		w.redecideStep(redecideChunk)
	}
	w.turn(hostmerge.Host{Addr: b}) // mid-pass
	for range steps * 2 {
		w.redecideStep(redecideChunk)
	}
	if len(w.turns) != 0 || w.Stats.Redecided != 5000 {
		t.Fatalf("after the pass: %d turns pending, %d flows rescored, want 0 and 5000", len(w.turns), w.Stats.Redecided)
	}
	// A step, then the rest at once (the offline tick): still once each.
	w.Stats.Redecided = 0
	w.turn(hostmerge.Host{Addr: a})
	w.redecideStep(redecideChunk)
	w.redecideAll()
	if w.Stats.Redecided != 3000 {
		t.Fatalf("step then the rest: %d flows rescored, want 3000", w.Stats.Redecided)
	}
}

// A new model (a reload) reaches each worker at its next Poll: flows of the
// plaintext swarm capture that the default model calls p2p are not p2p
// under a model whose p2p threshold no flow reaches, and the merger scores
// hosts with it too.
func TestSetModelReachesWorkersAtPoll(t *testing.T) {
	frames := readFrames(t, filepath.Join("..", "testdata", "ndpi", "pcap", "bittorrent.pcap"))
	p2p := func(m *classifier.Model) int {
		e := NewEngine(EngineConfig{Worker: Config{Model: classifier.DefaultModel()}})
		w := e.Workers()[0]
		n := 0
		w.Decided = func(f *Flow, _ *classifier.HostFeatures) {
			if f.Label == classifier.P2P {
				n++
			}
		}
		if m != nil {
			e.SetModel(m)
			if w.model == m {
				t.Fatal("the worker took the model before its Poll")
			}
			w.Poll()
			if w.model != m {
				t.Fatal("the worker did not take the model at its Poll")
			}
		}
		for _, fr := range frames {
			w.Packet(fr.link, fr.data, fr.ts)
		}
		return n
	}
	strict := *classifier.DefaultModel()
	strict.THigh = 1.01 // no probability reaches it
	if def, st := p2p(nil), p2p(&strict); def == 0 || st != 0 {
		t.Fatalf("p2p flows: %d under the default model, %d under the strict one", def, st)
	}
}
