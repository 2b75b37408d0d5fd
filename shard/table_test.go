package shard

import (
	"encoding/binary"
	"github.com/swarmguard/swarmguard/classifier"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/shard/packet"
)

func meta(src, dst string, proto uint8) *packet.Meta {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	return &packet.Meta{Src: addr16(s.Addr()), Dst: addr16(d.Addr()), SrcPort: s.Port(), DstPort: d.Port(), Proto: proto, IPv6: s.Addr().Is6()}
}

func TestKeyIsSymmetric(t *testing.T) {
	k1, d1 := makeKey(meta("10.0.0.1:5000", "10.0.0.2:80", 6))
	k2, d2 := makeKey(meta("10.0.0.2:80", "10.0.0.1:5000", 6))
	if k1 != k2 || k1.Hash() != k2.Hash() || d1 == d2 {
		t.Fatalf("keys %v/%v dirs %d/%d", k1, k2, d1, d2)
	}
	k3, _ := makeKey(meta("[2001:db8::1]:5000", "[2001:db8::2]:80", 6))
	if k3 == k1 || k3.Endpoint(0).String() != "[2001:db8::1]:5000" {
		t.Fatalf("v6 key %v", k3.Endpoint(0))
	}
	if k1.Endpoint(0).String() != "10.0.0.1:5000" {
		t.Fatalf("v4 endpoint printed as %s", k1.Endpoint(0))
	}
}

func TestLookupCreatesFindsAndExpires(t *testing.T) {
	tb := NewTable(TableConfig{Capacity: 64, UDPIdle: time.Second})
	var left []Reason
	tb.Leave = func(f *Flow, why Reason) { left = append(left, why) }
	k, _ := makeKey(meta("10.0.0.1:5000", "10.0.0.2:53", 17))
	f, created := tb.Lookup(&k, k.Hash(), 0)
	if !created || f.Key != k {
		t.Fatal("first lookup did not create")
	}
	f.Account(0, 10, 0, 0)
	if g, created := tb.Lookup(&k, k.Hash(), int64(500*time.Millisecond)); created || g != f {
		t.Fatal("second lookup did not find the flow")
	}
	if _, created := tb.Lookup(&k, k.Hash(), int64(3*time.Second)); !created || len(left) != 1 || left[0] != Expired {
		t.Fatalf("idle flow not replaced: left %v", left)
	}
	tb.Sweep(int64(10 * time.Second))
	if tb.Stats.Active != 0 || tb.Stats.Expired != 2 {
		t.Fatalf("after sweep: %+v", tb.Stats)
	}
}

// A full table never refuses a flow: the least recently seen flow of the
// bucket leaves, and that is counted.
func TestFullTableEvictsAndCounts(t *testing.T) {
	tb := NewTable(TableConfig{Capacity: 8}) // one bucket: both choices are the same
	evicted := 0
	tb.Leave = func(f *Flow, why Reason) {
		if why == Evicted {
			evicted++
		}
	}
	for i := 0; i < 100; i++ {
		m := meta("10.0.0.1:5000", netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), 80).String(), 6)
		k, _ := makeKey(m)
		f, created := tb.Lookup(&k, k.Hash(), int64(i)*int64(time.Millisecond))
		if !created || f == nil {
			t.Fatalf("flow %d not created", i)
		}
		f.Account(0, 0, 0, int64(i)*int64(time.Millisecond))
	}
	if tb.Capacity() != 8 || tb.Stats.Active != 8 || tb.Stats.Evicted != 92 || evicted != 92 {
		t.Fatalf("capacity %d, stats %+v, evicted %d", tb.Capacity(), tb.Stats, evicted)
	}
}

func TestAccountStreamingStatistics(t *testing.T) {
	var f Flow
	f.Begin(0, classifier.ProtoTCP, 40000, 443)
	f.Account(0, 0, 0x02, 0)                       // SYN
	f.Account(1, 0, 0x12, int64(time.Millisecond)) // SYN+ACK
	for i, n := range []int{200, 300, 50, 1400, 1400} {
		f.Account(uint8(i%2), n, 0x18, int64(i+2)*int64(time.Millisecond))
	}
	if !f.Has(classifier.FlagSyn|classifier.FlagSynAck) || f.Payloads() != 5 || f.Bytes[0] != 200+50+1400 || f.Bytes[1] != 300+1400 {
		t.Fatalf("counts: %+v", f)
	}
	if f.Turns != 5 || f.Turn[0] != 200 || f.Turn[1] != 300 || f.Small[0] != 1 || f.Large[0]+f.Large[1] != 2 || f.AgeNs() > 6e6 || f.AgeNs() < 5e6 {
		t.Fatalf("turns/sizes: turns %d %v small %v large %v age %d", f.Turns, f.Turn, f.Small, f.Large, f.AgeNs())
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tb := NewTable(TableConfig{Capacity: 1 << 10})
	k, _ := makeKey(meta("10.0.0.1:5000", "10.0.0.2:80", 6))
	if n := testing.AllocsPerRun(1000, func() {
		f, _ := tb.Lookup(&k, k.Hash(), 1)
		f.Account(0, 100, 0x18, 1)
	}); n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
}

func BenchmarkLookupHit(b *testing.B) {
	tb := NewTable(TableConfig{Capacity: 1 << 16})
	keys := make([]Key, 4096)
	for i := range keys {
		keys[i], _ = makeKey(meta("10.0.0.1:5000", netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 80).String(), 6))
		tb.Lookup(&keys[i], keys[i].Hash(), 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := &keys[i&4095]
		tb.Lookup(k, k.Hash(), 1)
	}
}

// A second bucket and a cuckoo step keep a table at 92 % load from losing
// flows to full buckets (one bucket per flow loses them from ~70 %).
func TestTwoChoicesFillTheTable(t *testing.T) {
	const n = 100_000
	tb := NewTable(TableConfig{Capacity: n * 100 / 92})
	for i := 0; i < n; i++ {
		m := meta(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1000).String(), "10.255.0.1:80", 17)
		k, _ := makeKey(m)
		tb.Lookup(&k, k.Hash(), 0)
	}
	if tb.Stats.Evicted > n/1000 {
		t.Fatalf("%d of %d flows evicted at %.0f%% load", tb.Stats.Evicted, n, 100*float64(n)/float64(tb.Capacity()))
	}
}

// The key's last word as Equal and Hash read it is Tail of its fields (the
// layout is little-endian: amd64, arm64), and HashWords of a key's words
// is its Hash, which lets the fast path hash from header fields.
func TestTailAndHashWords(t *testing.T) {
	k := Key{LoPort: 0x1234, HiPort: 0xabcd, PathLo: 0x0fed, PathHi: 0xa5, Proto: 17}
	k.LoAddr[1], k.HiAddr[0], k.HiAddr[1] = 0xffff0a000001, 1, 0xffff0a000002
	if got, want := k.tail(), Tail(0x1234, 0xabcd, 0xa50fed, 17); got != want {
		t.Fatalf("tail %#x, Tail %#x", got, want)
	}
	if k.Hash() != HashWords(k.LoAddr[0], k.LoAddr[1], k.HiAddr[0], k.HiAddr[1], Tail(k.LoPort, k.HiPort, k.Path(), k.Proto)) {
		t.Fatal("Hash and HashWords differ")
	}
	tb := NewTable(TableConfig{Capacity: 64})
	f, _ := tb.Lookup(&k, k.Hash(), 1)
	w := [5]uint64{k.LoAddr[0], k.LoAddr[1], k.HiAddr[0], k.HiAddr[1], k.tail()}
	if got := tb.FindWords(w[0], w[1], w[2], w[3], w[4], k.Hash(), 2); got != f {
		t.Fatalf("FindWords: %p, Lookup: %p", got, f)
	}
	if tag, c := tb.Candidate(k.Hash()); c != f || !tb.Check(tag, c, w[0], w[1], w[2], w[3], w[4], k.Hash(), 2) {
		t.Fatal("Candidate/Check do not find the flow Lookup made")
	}
	if tb.FindWords(w[0], w[1]^1, w[2], w[3], w[4], k.Hash(), 2) != nil {
		t.Fatal("FindWords matched another key")
	}
	if tb.FindWords(w[0], w[1], w[2], w[3], w[4], k.Hash(), 2+int64(DefaultUDPIdle)*2) != nil {
		t.Fatal("FindWords returned an idle flow")
	}
}

// makeKey is the key of m and m's direction.
func makeKey(m *packet.Meta) (k Key, dir uint8) {
	dir = k.Set(m)
	return k, dir
}

// addr16 is a's Addr16 words.
func addr16(a netip.Addr) packet.Addr16 {
	b := a.As16()
	return packet.Addr16{binary.BigEndian.Uint64(b[0:8]), binary.BigEndian.Uint64(b[8:16])}
}

// Over its new-flow budget the table admits only the sampled sixteenth of
// new flows and counts the rest as shed; flows already in keep their
// slots, and the budget comes back at the next step.
func TestNewFlowBudgetShedsAndSamples(t *testing.T) {
	tb := NewTable(TableConfig{Capacity: 1 << 16, NewPerSecond: 1000}) // 100 per 100 ms
	key := func(i int) (Key, uint64) {
		var k Key
		k.LoAddr = packet.Addr16{0, uint64(0xffff0a000000 | i)}
		k.HiAddr = packet.Addr16{0, uint64(0xffff0b000000 | i)}
		k.LoPort, k.HiPort, k.Proto = 1000, 2000, 17
		return k, k.Hash()
	}
	now := int64(time.Second)
	admitted, sampled := 0, 0
	for i := range 10000 {
		k, h := key(i)
		if f, _ := tb.Lookup(&k, h, now); f != nil {
			admitted++
			if i >= 100 && h>>60 != 0 {
				t.Fatalf("flow %d admitted over the budget without being sampled", i)
			}
			if i >= 100 {
				sampled++
			}
		}
	}
	if admitted != 100+sampled || sampled < 9900/16/2 || sampled > 9900/16*2 || tb.Stats.Shed != uint64(10000-admitted) {
		t.Fatalf("admitted %d (%d sampled), shed %d", admitted, sampled, tb.Stats.Shed)
	}
	// The first 100 are in and found without touching the budget.
	for i := range 100 {
		k, h := key(i)
		if f, created := tb.Lookup(&k, h, now); f == nil || created {
			t.Fatalf("flow %d lost its slot", i)
		}
	}
	// A tenth of a second later, 100 more.
	k, h := key(20000)
	if f, created := tb.Lookup(&k, h, now+int64(100*time.Millisecond)); f == nil || !created {
		t.Fatal("the budget did not come back")
	}
}

// Every frame a worker gets is counted by what became of it: decided,
// slow path, shed, or not classified by reason.
func TestEveryFrameIsCounted(t *testing.T) {
	w := NewWorker(Config{Model: classifier.DefaultModel(), Flows: TableConfig{NewPerSecond: 10}})
	frames := readFrames(t, filepath.Join("..", "testdata", "ndpi", "pcap", "bittorrent.pcap"))
	frames = append(frames, readFrames(t, filepath.Join("..", "testdata", "ndpi", "pcap", "443-curl.pcap"))...)
	for i, fr := range frames {
		w.Packet(fr.link, fr.data, fr.ts)
		if i%7 == 0 { // and frames cut short
			w.Packet(fr.link, fr.data[:min(len(fr.data), 30)], fr.ts)
		}
	}
	s, tb := w.Stats, w.table.Stats
	sum := s.Decided + s.Slow + tb.Shed + s.Fragments + s.NotIP + s.OtherL4 + s.Malformed + s.TooDeep
	if sum != s.Packets || s.Malformed == 0 || tb.Shed == 0 {
		t.Fatalf("packets %d, counted %d: %+v shed %d", s.Packets, sum, s, tb.Shed)
	}
}
