package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

func load(t testing.TB) *Objects {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs")
	}
	o, err := Load(Options{})
	if errors.Is(err, ErrNoBPF) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// frame builds Ethernet + IPv4 + UDP (or TCP) with the given endpoints.
func frame(src, dst netip.AddrPort, proto byte) []byte {
	b := make([]byte, 14+20+20+16)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	l4 := ip[20:]
	binary.BigEndian.PutUint16(l4[0:], src.Port())
	binary.BigEndian.PutUint16(l4[2:], dst.Port())
	if proto == 6 {
		l4[12] = 5 << 4
	} else {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	}
	return b
}

// xdpMD is struct xdp_md as BPF_PROG_RUN takes it: the packet arrives on
// loopback queue 0.
type xdpMD struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}

func run(t *testing.T, o *Objects, pkt []byte) uint32 {
	t.Helper()
	ctx := xdpMD{DataEnd: uint32(len(pkt)), IngressIfindex: 1}
	ret, err := o.Program().Run(&ebpf.RunOptions{Data: pkt, Context: &ctx})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return ret
}

func TestBanDropsBothDirectionsUntilExpiry(t *testing.T) {
	o := load(t)
	if err := o.Configure(Bridge, 1, time.Second, 0); err != nil {
		t.Fatal(err)
	}
	o.Beat()
	peer, host := netip.MustParseAddrPort("10.0.0.9:51413"), netip.MustParseAddrPort("10.0.0.5:40000")
	if err := o.Ban(peer.Addr(), Monotonic()+uint64(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := run(t, o, frame(peer, host, 6)); got != xdpDrop {
		t.Fatalf("from banned peer: action %d", got)
	}
	if got := run(t, o, frame(host, peer, 17)); got != xdpDrop {
		t.Fatalf("to banned peer: action %d", got)
	}
	// An expired ban lets packets through (userspace removes it later).
	o.Ban(peer.Addr(), Monotonic()-1)
	if got := run(t, o, frame(host, peer, 17)); got == xdpDrop {
		t.Fatal("expired ban still drops")
	}
	c, _ := o.Counters()
	if c[BanDrop] != 2 || c[RX] != 3 {
		t.Fatalf("counters %v", c)
	}
	bans, err := o.BanList()
	if err != nil || len(bans) != 1 {
		t.Fatalf("ban list %v %v", bans, err)
	}
}

func TestBypassCountsAndActsForBothDirections(t *testing.T) {
	o := load(t)
	o.Configure(Bridge, 1, time.Second, 0)
	o.Beat()
	a, b := netip.MustParseAddrPort("10.0.0.5:40000"), netip.MustParseAddrPort("10.0.0.1:443")
	k := key(b, a, 6) // 10.0.0.1 sorts first: it is Lo
	if err := o.SetBypass(k, Pass); err != nil {
		t.Fatal(err)
	}
	if got := run(t, o, frame(a, b, 6)); got != xdpPass {
		t.Fatalf("bypass pass a->b: %d", got)
	}
	if got := run(t, o, frame(b, a, 6)); got != xdpPass {
		t.Fatalf("bypass pass b->a: %d", got)
	}
	if got := run(t, o, frame(a, b, 6)); got != xdpPass {
		t.Fatalf("bypass pass a->b: %d", got)
	}
	st, err := o.BypassOf(k)
	if err != nil || st.Packets != 3 || st.Bytes != 3*70 || st.FromLo.Packets != 1 || st.FromLo.Bytes != 70 {
		t.Fatalf("bypass stats %+v %v (want 3 packets, 1 from Lo)", st, err)
	}
	o.SetBypass(k, Drop)
	if got := run(t, o, frame(b, a, 6)); got != xdpDrop {
		t.Fatalf("bypass drop: %d", got)
	}
	c, _ := o.Counters()
	if c[BypassPass] != 3 || c[BypassDrop] != 1 {
		t.Fatalf("counters %v", c)
	}
}

// With no socket for the queue, or a stale heartbeat, the kernel takes over:
// a bridge forwards to the other port, a monitor passes.
func TestFailOpen(t *testing.T) {
	o := load(t)
	a, b := netip.MustParseAddrPort("10.0.0.5:40000"), netip.MustParseAddrPort("10.0.0.7:51413")
	if err := o.SetPeerPort(1, 1); err != nil {
		t.Fatal(err)
	}
	o.Configure(Bridge, 1, time.Second, 0)
	o.Beat()
	if got := run(t, o, frame(a, b, 17)); got != xdpRedirect {
		t.Fatalf("bridge, no socket: %d", got)
	}
	// A beat newer than the packet's clock reading (written on another CPU
	// in between) is fresh, not 2^64 ns old: the packet gets as far as the
	// missing socket.
	o.objs.Heartbeat.Put(uint32(0), Monotonic()+uint64(time.Second))
	if got := run(t, o, frame(a, b, 17)); got != xdpRedirect {
		t.Fatalf("bridge, heartbeat ahead of the packet: %d", got)
	}
	o.objs.Heartbeat.Put(uint32(0), Monotonic()-uint64(2*time.Second))
	if got := run(t, o, frame(a, b, 17)); got != xdpRedirect {
		t.Fatalf("bridge, stale heartbeat: %d", got)
	}
	o.Configure(Monitor, 1, time.Second, 0)
	if got := run(t, o, frame(a, b, 17)); got != xdpPass {
		t.Fatalf("monitor, stale heartbeat: %d", got)
	}
	c, _ := o.Counters()
	if c[XSKMissing] != 2 || c[FailOpenForward] != 3 || c[FailOpenPass] != 1 {
		t.Fatalf("counters %v", c)
	}
}

func TestBansSurviveReloadWhenPinned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := fmt.Sprintf("/sys/fs/bpf/swarmguard-test-%d", time.Now().UnixNano()) // bpffs names may not contain dots
	t.Cleanup(func() { os.RemoveAll(dir) })
	o, err := Load(Options{PinPath: dir})
	if err != nil {
		t.Skip(err)
	}
	peer := netip.MustParseAddr("2001:db8::9")
	o.Ban(peer, Monotonic()+uint64(time.Hour))
	o.Close()
	o2, err := Load(Options{PinPath: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	bans, _ := o2.BanList()
	if _, ok := bans[peer]; !ok {
		t.Fatalf("ban lost across reload: %v", bans)
	}
}

// FuzzXDP runs the program on arbitrary frames: it must load-check them
// (the verifier proved bounds) and return one of the actions it uses.
func FuzzXDP(f *testing.F) {
	f.Add(frame(netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), 6))
	f.Add(append([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x81, 0x00, 0, 5, 0x86, 0xdd}, make([]byte, 60)...))
	f.Add(make([]byte, 14))
	if os.Geteuid() != 0 {
		f.Skip("needs root to load BPF programs")
	}
	o, err := Load(Options{})
	if err != nil {
		f.Skip(err)
	}
	defer o.Close()
	o.Configure(Bridge, 1, time.Second, 0)
	o.Beat()
	o.SetPeerPort(1, 1)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) < 14 || len(pkt) > 4000 {
			return
		}
		ctx := xdpMD{DataEnd: uint32(len(pkt)), IngressIfindex: 1}
		ret, err := o.Program().Run(&ebpf.RunOptions{Data: pkt, Context: &ctx})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if ret != xdpDrop && ret != xdpPass && ret != xdpRedirect {
			t.Fatalf("action %d", ret)
		}
	})
}

// A decided (bypassed) flow skips ban lookups only while the ban epoch is
// unchanged: a ban added later still drops it.
func TestBanReachesBypassedFlow(t *testing.T) {
	o := load(t)
	o.Configure(Bridge, 1, time.Second, 0)
	o.Beat()
	o.TouchBans()
	a, b := netip.MustParseAddrPort("10.0.0.5:40000"), netip.MustParseAddrPort("10.0.0.9:51413")
	o.SetBypass(key(a, b, 6), Pass)
	for i := 0; i < 3; i++ {
		if got := run(t, o, frame(a, b, 6)); got != xdpPass {
			t.Fatalf("bypassed flow before the ban: %d", got)
		}
	}
	if err := o.Ban(b.Addr(), Monotonic()+uint64(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := run(t, o, frame(a, b, 6)); got != xdpDrop {
		t.Fatalf("bypassed flow after its peer's ban: %d", got)
	}
	if err := o.Unban(b.Addr()); err != nil {
		t.Fatal(err)
	}
	if got := run(t, o, frame(b, a, 6)); got != xdpPass {
		t.Fatalf("bypassed flow after the unban: %d", got)
	}
}

// key is the bypass key of a flow whose lower endpoint is lo (the caller
// orders them; the order's definition is shard.Dir, which this package may
// not import, and dataplane/live's kernel-key test checks it).
func key(lo, hi netip.AddrPort, proto uint8) FlowKey {
	return FlowKey{Lo: lo.Addr().As16(), Hi: hi.Addr().As16(), LoPort: lo.Port(), HiPort: hi.Port(), Proto: proto}
}

// During fail-open (a stale heartbeat) bans stay enforced: the kernel
// forwards everything else itself, but a banned peer's packets are still
// dropped, both ways; so are decided p2p flows' (bypass drop entries).
func TestBansHoldDuringFailOpen(t *testing.T) {
	o := load(t)
	if err := o.SetPeerPort(1, 1); err != nil {
		t.Fatal(err)
	}
	o.Configure(Bridge, 1, time.Second, 0)
	o.objs.Heartbeat.Put(uint32(0), Monotonic()-uint64(2*time.Second)) // stale: failed open
	peer, host, other := netip.MustParseAddrPort("10.0.0.9:51413"), netip.MustParseAddrPort("10.0.0.5:40000"), netip.MustParseAddrPort("10.0.0.6:443")
	o.Ban(peer.Addr(), Monotonic()+uint64(time.Hour))
	p2p := netip.MustParseAddrPort("10.0.0.7:6881")
	o.SetBypass(key(host, p2p, 6), Drop)
	for _, c := range []struct {
		from, to netip.AddrPort
		want     uint32
	}{{peer, host, xdpDrop}, {host, peer, xdpDrop}, {host, p2p, xdpDrop}, {p2p, host, xdpDrop}, {host, other, xdpRedirect}} {
		if got := run(t, o, frame(c.from, c.to, 6)); got != c.want {
			t.Errorf("%v -> %v while failed open: action %d, want %d", c.from, c.to, got, c.want)
		}
	}
	c, _ := o.Counters()
	if c[BanDrop] != 2 || c[BypassDrop] != 2 || c[FailOpenForward] != 1 {
		t.Fatalf("counters %v", c)
	}
}

// A loaded program's ban epoch is never 0: at 0 every decided packet
// would look its bans up.
func TestBanEpochStartsAboveZero(t *testing.T) {
	o := load(t)
	var ep uint64
	if err := o.objs.BanEpoch.Lookup(uint32(0), &ep); err != nil {
		t.Fatal(err)
	}
	if ep == 0 {
		t.Fatal("ban epoch 0 after load")
	}
}

// The bypass map is keyed by the flow key's 64-bit hash and keeps the key:
// an entry of another flow under the same hash (a collision, forced here)
// is a miss, not that flow's action, and BypassOf says it is not there.
func TestBypassHashCollisionIsAMiss(t *testing.T) {
	o := load(t)
	if err := o.SetPeerPort(1, 1); err != nil {
		t.Fatal(err)
	}
	o.Configure(Bridge, 1, time.Second, 0)
	o.Beat()
	a, b := netip.MustParseAddrPort("10.0.0.5:40000"), netip.MustParseAddrPort("10.0.0.1:443")
	k := key(b, a, 6)
	other := key(netip.MustParseAddrPort("10.0.0.2:80"), a, 6)
	v := xdpBypassVal{Key: other, Action: uint32(Drop)}
	if err := o.objs.Bypass.Put(KeyHash(k), &v); err != nil {
		t.Fatal(err)
	}
	if got := run(t, o, frame(a, b, 6)); got == xdpDrop {
		t.Fatal("another flow's entry under the same hash dropped this flow")
	}
	if _, err := o.BypassOf(k); err == nil {
		t.Fatal("BypassOf found another flow's entry")
	}
	c, _ := o.Counters()
	if c[BypassDrop] != 0 || c[XSKMissing] != 1 {
		t.Fatalf("counters %v: want the flow sent toward a worker", c)
	}
	// Its own entry replaces the other one.
	if err := o.SetBypass(k, Drop); err != nil {
		t.Fatal(err)
	}
	if got := run(t, o, frame(a, b, 6)); got != xdpDrop {
		t.Fatalf("own entry: %d", got)
	}
}

// KeyHash is the program's hash: an entry set from Go is found by the
// program, for 64 flows of different addresses and ports.
func TestKeyHashIsTheProgramsHash(t *testing.T) {
	o := load(t)
	o.Configure(Bridge, 1, time.Second, 0)
	o.Beat()
	for i := range 64 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i), byte(i * 7), 9}), uint16(1000+i*37))
		b := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i), byte(i * 7), 200}), uint16(60000-i*11))
		if err := o.SetBypass(key(a, b, 17), Pass); err != nil {
			t.Fatal(err)
		}
		if got := run(t, o, frame(b, a, 17)); got != xdpPass {
			t.Fatalf("flow %d: the program did not find the entry Go keyed (%d)", i, got)
		}
	}
}
