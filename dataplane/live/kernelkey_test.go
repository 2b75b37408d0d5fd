package live

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/shard"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// keyOf is the kernel key of the flow between a and b (either order).
func keyOf(a, b netip.AddrPort, proto uint8, vlan uint16) bpf.FlowKey {
	m := packet.Meta{Src: words(a.Addr()), Dst: words(b.Addr()), SrcPort: a.Port(), DstPort: b.Port(), Proto: proto, VLAN: vlan, Path: uint32(vlan)}
	var k shard.Key
	k.Set(&m)
	return kernelKey(&k)
}

func words(a netip.Addr) packet.Addr16 {
	b := a.As16()
	return packet.Addr16{binary.BigEndian.Uint64(b[0:8]), binary.BigEndian.Uint64(b[8:16])}
}

// kernel is the XDP program loaded on its own (nothing attached, nothing
// pinned), run with BPF_PROG_RUN.
type kernel struct{ o *bpf.Objects }

func loadKernel(tb testing.TB) *kernel {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to load BPF programs")
	}
	o, err := bpf.Load(bpf.Options{})
	if err != nil {
		tb.Skip(err)
	}
	tb.Cleanup(func() { o.Close() })
	if err := o.Configure(bpf.Bridge, 1, time.Hour, 0); err != nil {
		tb.Fatal(err)
	}
	if err := o.Beat(); err != nil {
		tb.Fatal(err)
	}
	return &kernel{o: o}
}

// xdpMD is struct xdp_md as BPF_PROG_RUN takes it.
type xdpMD struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}

const xdpDrop = 1

func (k *kernel) run(tb testing.TB, frame []byte) uint32 {
	tb.Helper()
	ctx := xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: 1}
	ret, err := k.o.Program().Run(&ebpf.RunOptions{Data: frame, Context: &ctx})
	if err != nil {
		tb.Fatalf("BPF_PROG_RUN: %v", err)
	}
	return ret
}

// keysAgree reports whether the program keys frame as the Go path does:
// with a drop entry under the Go key, the program must drop the frame. The
// entry is then turned into a pass entry, so that no later frame can hit
// it and be dropped by a key that is not its own. Frames the Go decoder
// gives no flow are not the kernel's to key alike: true.
func (k *kernel) keysAgree(tb testing.TB, frame []byte) (bool, shard.Key) {
	var m packet.Meta
	var key shard.Key
	if len(frame) < 14 || packet.Decode(packet.LinkEthernet, frame, &m) != packet.OK {
		return true, key
	}
	key.Set(&m)
	kk := kernelKey(&key)
	if err := k.o.SetBypass(kk, bpf.Drop); err != nil {
		tb.Fatal(err)
	}
	before := k.counters(tb)
	got := k.run(tb, frame)
	if err := k.o.SetBypass(kk, bpf.Pass); err != nil {
		tb.Fatal(err)
	}
	if got == xdpDrop {
		return true, key
	}
	// A frame the program takes for a tunnel it does not open (a tunnel
	// port or protocol) goes to a worker, whose decoder reads it: that is
	// agreement too, whatever the decoder then finds. A tunnel it opened,
	// or anything else, must meet its entry.
	after := k.counters(tb)
	return after[bpf.Tunnel] > before[bpf.Tunnel] && after[bpf.TunnelOpen] == before[bpf.TunnelOpen], key
}

// counters are the program's counters.
func (k *kernel) counters(tb testing.TB) [bpf.NumCounters]uint64 {
	c, err := k.o.Counters()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// tunnels is the program's count of tunnelled frames.
func (k *kernel) tunnels(tb testing.TB) uint64 { return k.counters(tb)[bpf.Tunnel] }

// corpusFrames are the Ethernet frames of a few bundled captures, and each
// again with an 802.1Q tag (VLAN 10), with a QinQ pair (outer 20, inner 30)
// and with three tags (a folded path).
func corpusFrames(tb testing.TB) [][]byte {
	var out [][]byte
	for _, name := range []string{"bittorrent.pcap", "bittorrent_utp.pcap", "443-curl.pcap", "http_ipv6.pcap"} {
		r, err := pcapsrc.Open(filepath.Join("..", "..", "testdata", "ndpi", "pcap", name))
		if err != nil {
			continue
		}
		for n := 0; n < 300; n++ {
			f, link, _, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				tb.Fatal(err)
			}
			if link != packet.LinkEthernet {
				break
			}
			f = append([]byte(nil), f...)
			out = append(out, f, tag(f, 0x8100, 10), tag(tag(f, 0x8100, 30), 0x88a8, 20),
				tag(tag(tag(f, 0x8100, 40), 0x8100, 30), 0x88a8, 20))
		}
		r.Close()
	}
	if len(out) < 100 {
		tb.Fatalf("only %d corpus frames", len(out))
	}
	return out
}

// tag inserts a VLAN tag of the given TPID and id after the MAC addresses.
func tag(f []byte, tpid, id uint16) []byte {
	out := make([]byte, 0, len(f)+4)
	out = append(out, f[:12]...)
	out = binary.BigEndian.AppendUint16(out, tpid)
	out = binary.BigEndian.AppendUint16(out, id)
	return append(out, f[12:]...)
}

// The kernel's bypass key and the Go flow key are one definition: for
// every frame of real traffic (untagged, tagged, QinQ; IPv4 and IPv6), and
// for each again inside the tunnels the program opens (PPPoE, MPLS with IP
// and with a pseudowire, IPv4 IP-in-IP, GRE with a key, GTP-U, VXLAN and
// Geneve with an inner tag), a bypass entry written under the Go key is the
// entry the program finds.
func TestKernelKeyIsShardKey(t *testing.T) {
	k := loadKernel(t)
	checked, tunnelled := 0, 0
	for _, f := range corpusFrames(t) {
		ok, key := k.keysAgree(t, f)
		if !ok {
			t.Fatalf("the program keys this frame otherwise than shard.Key %+v: % x", key, f[:min(len(f), 80)])
		}
		if key.Proto == 0 {
			continue
		}
		checked++
		if f[12] == 0x81 || f[12] == 0x88 {
			continue // tagged: its untagged twin is wrapped below
		}
		for name, w := range map[string][]byte{"pppoe": pppoeWrap(f), "ipip": ipWrap(f, 0), "gre": ipWrap(f, 47),
			"gtpu": udpWrap(f, 2152, 2152), "vxlan": udpWrap(tag(f, 0x8100, 7), 50000, 4789),
			"geneve": udpWrap(tag(f, 0x8100, 9), 50000, 6081), "mpls": mplsWrap(f, false), "mpls-pw": mplsWrap(tag(f, 0x8100, 8), true),
			"ip6ip": ip6Wrap(f), "gre-eth": greEthWrap(f, 0x6558, nil), "erspan2": greEthWrap(f, 0x88be, []byte{0x10, 0x07, 0, 42, 0, 0, 0, 0}),
			"erspan3": greEthWrap(f, 0x22eb, []byte{0x20, 0x07, 0, 42, 0, 0, 0, 1, 0, 0, 0, 0}), "gtpu-ext": gtpExtWrap(f),
			"teredo": teredoWrap(f)} {
			if w == nil {
				continue
			}
			ok, key := k.keysAgree(t, w)
			if !ok || key.Proto == 0 {
				t.Fatalf("%s: the program keys this frame otherwise than shard.Key %+v: % x", name, key, w[:min(len(w), 100)])
			}
			kk := kernelKey(&key)
			if err := k.o.SetBypass(kk, bpf.Drop); err != nil {
				t.Fatal(err)
			}
			if k.run(t, w) != xdpDrop {
				t.Fatalf("%s: the program did not open the tunnel to the inner flow's entry: % x", name, w[:min(len(w), 100)])
			}
			if err := k.o.SetBypass(kk, bpf.Pass); err != nil {
				t.Fatal(err)
			}
			tunnelled++
		}
	}
	t.Logf("%d frames with a flow checked, %d tunnelled ones opened in the kernel", checked, tunnelled)
}

// pppoeWrap puts a bare Ethernet frame's IP packet in PPPoE session 0x1234.
func pppoeWrap(f []byte) []byte {
	ppp := uint16(0x0021)
	if binary.BigEndian.Uint16(f[12:14]) == 0x86dd {
		ppp = 0x0057
	}
	b := append([]byte(nil), f[:12]...)
	b = append(b, 0x88, 0x64, 0x11, 0, 0x12, 0x34)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f)-14+2))
	b = binary.BigEndian.AppendUint16(b, ppp)
	return append(b, f[14:]...)
}

// ipWrap puts a bare frame's IP packet in IPv4 10.200.0.1 -> 10.200.0.2:
// IP-in-IP (proto 0: 4 or 41 by the packet) or GRE with key 0xabcd (47).
func ipWrap(f []byte, proto byte) []byte {
	inner := f[14:]
	if proto == 0 {
		proto = 4
		if inner[0]>>4 == 6 {
			proto = 41
		}
	} else {
		et := binary.BigEndian.Uint16(f[12:14])
		inner = append([]byte{0x20, 0, byte(et >> 8), byte(et), 0, 0, 0xab, 0xcd}, inner...)
	}
	return outerIPv4(proto, inner)
}

// udpWrap puts a bare frame in IPv4 UDP sp -> dp: GTP-U (its IP packet),
// VXLAN VNI 5000 or Geneve VNI 6000 with one option word (the whole frame).
func udpWrap(f []byte, sp, dp uint16) []byte {
	var p []byte
	switch dp {
	case 2152:
		p = append([]byte{0x30, 0xff, 0, 0, 0, 0, 0x11, 0x11}, f[14:]...)
		binary.BigEndian.PutUint16(p[2:], uint16(len(f)-14))
	case 6081:
		p = append([]byte{0x01, 0, 0x65, 0x58, 0, 0x17, 0x70, 0, 0x01, 0x02, 0x03, 0x00}, f...)
	default:
		p = append([]byte{0x08, 0, 0, 0, 0, 0x13, 0x88, 0}, f...)
	}
	u := make([]byte, 8, 8+len(p))
	binary.BigEndian.PutUint16(u[0:], sp)
	binary.BigEndian.PutUint16(u[2:], dp)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(p)))
	return outerIPv4(17, append(u, p...))
}

// ip6Wrap puts a bare frame's IP packet directly in IPv6 (4in6 or 6in6)
// behind a destination-options header.
func ip6Wrap(f []byte) []byte {
	nh := byte(4)
	if f[14]>>4 == 6 {
		nh = 41
	}
	ext := []byte{nh, 0, 1, 4, 0, 0, 0, 0} // PadN
	pay := append(ext, f[14:]...)
	b := make([]byte, 14+40, 14+40+len(pay))
	copy(b, []byte{2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa})
	binary.BigEndian.PutUint16(b[12:], 0x86dd)
	ip := b[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(pay)))
	ip[6], ip[7] = 60, 64
	ip[8], ip[23] = 0xfd, 1
	ip[24], ip[39] = 0xfd, 2
	return append(b, pay...)
}

// greEthWrap puts a whole frame in IPv4 GRE of protocol proto after hdr
// (bridged Ethernet, ERSPAN II or III), sequenced when hdr is set.
func greEthWrap(f []byte, proto uint16, hdr []byte) []byte {
	g := []byte{0, 0, byte(proto >> 8), byte(proto)}
	if hdr != nil {
		g[0] = 0x10
		g = append(g, 0, 0, 0, 7)
	}
	return outerIPv4(47, append(append(g, hdr...), f...))
}

// gtpExtWrap puts a bare frame's IP packet in a GTP-U G-PDU with a
// sequence number and one extension header (a PDU session container).
func gtpExtWrap(f []byte) []byte {
	p := append([]byte{0x34, 0xff, 0, 0, 0, 0, 0x11, 0x11, 0, 1, 0, 0x85, 1, 0x10, 0x05, 0}, f[14:]...)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)-8))
	u := make([]byte, 8, 8+len(p))
	binary.BigEndian.PutUint16(u[0:], 2152)
	binary.BigEndian.PutUint16(u[2:], 2152)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(p)))
	return outerIPv4(17, append(u, p...))
}

// teredoWrap puts a bare frame's IPv6 packet in Teredo (UDP 3544, after an
// origin indication); nil for IPv4.
func teredoWrap(f []byte) []byte {
	if f[14]>>4 != 6 {
		return nil
	}
	p := append([]byte{0, 0, 0x12, 0x34, 1, 2, 3, 4}, f[14:]...)
	u := make([]byte, 8, 8+len(p))
	binary.BigEndian.PutUint16(u[0:], 3544)
	binary.BigEndian.PutUint16(u[2:], 50000)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(p)))
	return outerIPv4(17, append(u, p...))
}

// mplsWrap puts a bare frame's IP packet under two labels, or (pw) the
// whole frame after a control word.
func mplsWrap(f []byte, pw bool) []byte {
	b := append([]byte(nil), f[:12]...)
	b = append(b, 0x88, 0x47, 0, 0x7d, 0, 64, 0, 0x3e, 0x81, 64)
	if pw {
		return append(append(b, 0, 0, 0, 0), f...)
	}
	return append(b, f[14:]...)
}

func outerIPv4(proto byte, l4 []byte) []byte {
	b := make([]byte, 14+20, 14+20+len(l4))
	copy(b, []byte{2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa})
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	copy(ip[12:], []byte{10, 200, 0, 1, 10, 200, 0, 2})
	return append(b, l4...)
}

// A decision taken on VLAN 10 is not applied to the same 5-tuple on VLAN 20,
// untagged, or behind an S-VLAN with the same C-VLAN id.
func TestBypassIsPerVLAN(t *testing.T) {
	k := loadKernel(t)
	a, b := netip.MustParseAddrPort("10.0.0.5:40000"), netip.MustParseAddrPort("10.0.0.9:51413")
	if err := k.o.SetBypass(keyOf(a, b, 6, 10), bpf.Drop); err != nil {
		t.Fatal(err)
	}
	f := tcpFrame(a, b)
	for _, c := range []struct {
		name  string
		frame []byte
		drop  bool
	}{
		{"vlan 10", tag(f, 0x8100, 10), true},
		{"vlan 10, other direction", tag(tcpFrame(b, a), 0x8100, 10), true},
		{"vlan 20", tag(f, 0x8100, 20), false},
		{"untagged", f, false},
		{"s-vlan 21, c-vlan 10", tag(tag(f, 0x8100, 10), 0x88a8, 21), false},
	} {
		if got := k.run(t, c.frame) == xdpDrop; got != c.drop {
			t.Errorf("%s: dropped %v, want %v", c.name, got, c.drop)
		}
	}
}

// tcpFrame is an untagged Ethernet/IPv4/TCP frame with 20 bytes of payload.
func tcpFrame(src, dst netip.AddrPort) []byte {
	b := make([]byte, 14+20+20+20)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	tcp[12], tcp[13] = 5<<4, 0x18
	return b
}

// FuzzKernelKey runs the XDP program and the Go decoder over arbitrary
// frames: whenever Go keys a flow, the program must key it alike.
func FuzzKernelKey(f *testing.F) {
	k := loadKernel(f)
	for i, fr := range corpusFrames(f) {
		if i%7 == 0 {
			f.Add(fr)
		}
		if i%21 == 0 && fr[12] == 0x08 {
			f.Add(pppoeWrap(fr))
			f.Add(ipWrap(fr, 47))
			f.Add(udpWrap(fr, 2152, 2152))
			f.Add(udpWrap(tag(fr, 0x8100, 7), 50000, 4789))
			f.Add(udpWrap(fr, 50000, 6081))
			f.Add(mplsWrap(fr, false))
			f.Add(mplsWrap(fr, true))
			f.Add(ip6Wrap(fr))
			f.Add(greEthWrap(fr, 0x88be, []byte{0x10, 0x07, 0, 42, 0, 0, 0, 0}))
			f.Add(gtpExtWrap(fr))
		}
		if i%21 == 0 && fr[12] == 0x86 {
			f.Add(teredoWrap(fr))
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if ok, key := k.keysAgree(t, frame); !ok {
			t.Fatalf("the program keys this frame otherwise than shard.Key %+v", key)
		}
	})
}

// Tunnelled frames: the program opens a PPPoE session, MPLS, IPv4 IP-in-IP,
// GRE, GTP-U and VXLAN as the decoder does, so a drop entry under the
// decoder's inner key drops them, and entries under their outer headers and
// a ban of a tunnel endpoint do not. (Before, PPPoE and MPLS frames were
// forwarded unseen as "not IP".)
func TestTunnelledFramesInTheKernel(t *testing.T) {
	k := loadKernel(t)
	a, b := netip.MustParseAddrPort("10.0.0.5:40000"), netip.MustParseAddrPort("10.0.0.9:51413")
	inner := tcpFrame(a, b)
	outer := func(proto byte, l4 []byte) []byte { // IPv4 10.200.0.1 -> 10.200.0.2 around l4
		f := make([]byte, 14+20, 14+20+len(l4))
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := f[14:]
		ip[0], ip[8], ip[9] = 0x45, 64, proto
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		copy(ip[12:], []byte{10, 200, 0, 1, 10, 200, 0, 2})
		return append(f, l4...)
	}
	udp := func(sp, dp uint16, p []byte) []byte {
		u := make([]byte, 8, 8+len(p))
		binary.BigEndian.PutUint16(u[0:], sp)
		binary.BigEndian.PutUint16(u[2:], dp)
		binary.BigEndian.PutUint16(u[4:], uint16(8+len(p)))
		return append(u, p...)
	}
	pppoe := append(append(append([]byte{}, inner[:12]...), 0x88, 0x64, 0x11, 0, 0x12, 0x34, 0, byte(len(inner)-14+2), 0, 0x21), inner[14:]...)
	mpls := append(append(append([]byte{}, inner[:12]...), 0x88, 0x47, 0, 0x3e, 0x81, 64), inner[14:]...)
	vlanInner := tag(inner, 0x8100, 7)
	frames := []struct {
		name   string
		frame  []byte
		kernel bool // the program opens it
	}{
		{"pppoe", pppoe, true},
		{"ipip", outer(4, inner[14:]), true},
		{"gre", outer(47, append([]byte{0, 0, 0x08, 0}, inner[14:]...)), true},
		{"gre with key", outer(47, append([]byte{0x20, 0, 0x08, 0, 0, 0, 0xab, 0xcd}, inner[14:]...)), true},
		{"vxlan", outer(17, udp(50000, 4789, append([]byte{0x08, 0, 0, 0, 0, 0x13, 0x88, 0}, inner...))), true},
		{"vxlan, inner vlan", outer(17, udp(50000, 4789, append([]byte{0x08, 0, 0, 0, 0, 0x13, 0x88, 0}, vlanInner...))), true},
		{"gtpu", outer(17, udp(2152, 2152, append([]byte{0x30, 0xff, 0, byte(len(inner) - 14), 0, 0, 0x11, 0x11}, inner[14:]...))), true},
		{"mpls", mpls, true},
	}
	// Drop entries under the keys the outer headers give, and a ban of the
	// tunnel endpoint: none of it may touch a tunnelled frame.
	for _, key := range []bpf.FlowKey{keyOf(netip.MustParseAddrPort("10.200.0.1:0"), netip.MustParseAddrPort("10.200.0.2:0"), 4, 0),
		keyOf(netip.MustParseAddrPort("10.200.0.1:0"), netip.MustParseAddrPort("10.200.0.2:0"), 47, 0),
		keyOf(netip.MustParseAddrPort("10.200.0.1:50000"), netip.MustParseAddrPort("10.200.0.2:4789"), 17, 0),
		keyOf(netip.MustParseAddrPort("10.200.0.1:2152"), netip.MustParseAddrPort("10.200.0.2:2152"), 17, 0)} {
		if err := k.o.SetBypass(key, bpf.Drop); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.o.Ban(netip.MustParseAddr("10.200.0.1"), bpf.Monotonic()+uint64(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, c := range frames {
		var m packet.Meta
		if r := packet.Decode(packet.LinkEthernet, c.frame, &m); r != packet.OK || m.SrcPort != 40000 || m.Encap == 0 {
			t.Fatalf("%s: the decoder reads %d %+v, not the inner flow", c.name, r, m)
		}
		before := k.tunnels(t)
		if got := k.run(t, c.frame); got == xdpDrop {
			t.Errorf("%s: dropped by an outer header's entry or ban", c.name)
		}
		if k.tunnels(t) != before+1 {
			t.Errorf("%s: not counted as tunnelled", c.name)
		}
		ok, key := k.keysAgree(t, c.frame)
		if !ok {
			t.Errorf("%s: the program keys it otherwise than the decoder (%+v)", c.name, key)
		}
		if c.kernel {
			// Opened in the kernel: the inner flow's entry drops it.
			kk := kernelKey(&key)
			if err := k.o.SetBypass(kk, bpf.Drop); err != nil {
				t.Fatal(err)
			}
			if k.run(t, c.frame) != xdpDrop {
				t.Errorf("%s: the inner flow's drop entry did not drop it", c.name)
			}
			if err := k.o.SetBypass(kk, bpf.Pass); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BenchmarkXDPDecided is the XDP program's cost for a packet of a decided
// flow (a bypass entry forwarding it), bare, inside PPPoE and inside VXLAN
// (BPF_PROG_RUN, repeated in the kernel; ns per packet).
func BenchmarkXDPDecided(b *testing.B) {
	k := loadKernel(b)
	bare := tcpFrame(netip.MustParseAddrPort("10.0.0.5:40000"), netip.MustParseAddrPort("10.0.0.9:51413"))
	for _, c := range []struct {
		name  string
		frame []byte
	}{{"untagged", bare}, {"pppoe", pppoeWrap(bare)}, {"vxlan", udpWrap(bare, 50000, 4789)}} {
		b.Run(c.name, func(b *testing.B) {
			var m packet.Meta
			if packet.Decode(packet.LinkEthernet, c.frame, &m) != packet.OK {
				b.Fatal("frame does not decode")
			}
			var key shard.Key
			key.Set(&m)
			if err := k.o.SetBypass(kernelKey(&key), bpf.Forward); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			_, per, err := k.o.Program().Benchmark(c.frame, b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
		})
	}
}
