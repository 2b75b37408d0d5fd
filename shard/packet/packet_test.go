package packet

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// Hand-built frames; the pcap reader tests decode the corpus's real ones.

func ipv4UDP(payload []byte, fragOff uint16, mf bool) []byte {
	b := make([]byte, 20+8+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	fl := fragOff & 0x1fff
	if mf {
		fl |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], fl)
	b[9] = ProtoUDP
	copy(b[12:], []byte{10, 0, 0, 1})
	copy(b[16:], []byte{10, 0, 0, 2})
	binary.BigEndian.PutUint16(b[20:], 6881)
	binary.BigEndian.PutUint16(b[22:], 51413)
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	copy(b[28:], payload)
	return b
}

func eth(et uint16, tags []uint16, l3 []byte) []byte {
	b := make([]byte, 12)
	for _, tpid := range tags {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, 100)
	}
	b = binary.BigEndian.AppendUint16(b, et)
	return append(b, l3...)
}

func ipv6TCP(ext []byte, firstNext byte, payload []byte) []byte {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], 443)
	binary.BigEndian.PutUint16(tcp[2:], 50000)
	tcp[12] = 5 << 4
	tcp[13] = TCPAck | TCPPsh
	body := append(append(append([]byte{}, ext...), tcp...), payload...)
	b := make([]byte, 40)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(body)))
	b[6] = firstNext
	b[8], b[23] = 0x20, 1
	b[24], b[39] = 0x20, 2
	return append(b, body...)
}

func TestDecode(t *testing.T) {
	udp := ipv4UDP([]byte("hello"), 0, false)
	hop := []byte{ProtoTCP, 0, 0, 0, 0, 0, 0, 0} // hop-by-hop, 8 bytes, next TCP
	cases := []struct {
		name    string
		link    LinkType
		frame   []byte
		want    Result
		payload string
		vlan    uint16
	}{
		{"ethernet ipv4 udp", LinkEthernet, eth(0x0800, nil, udp), OK, "hello", 0},
		{"802.1Q", LinkEthernet, eth(0x0800, []uint16{0x8100}, udp), OK, "hello", 100},
		{"QinQ", LinkEthernet, eth(0x0800, []uint16{0x88a8, 0x8100}, udp), OK, "hello", 100},
		{"three tags", LinkEthernet, eth(0x0800, []uint16{0x88a8, 0x8100, 0x8100}, udp), OK, "hello", 100},
		{"five tags", LinkEthernet, eth(0x0800, []uint16{0x88a8, 0x8100, 0x8100, 0x8100, 0x8100}, udp), Malformed, "", 0},
		{"raw ip", LinkRaw, udp, OK, "hello", 0},
		{"null loopback", LinkNull, append([]byte{2, 0, 0, 0}, udp...), OK, "hello", 0},
		{"linux sll", LinkLinuxSLL, append(append(make([]byte, 14), 0x08, 0x00), udp...), OK, "hello", 0},
		{"linux sll2", LinkLinuxSL2, append(append([]byte{0x08, 0x00}, make([]byte, 18)...), udp...), OK, "hello", 0},
		{"ethernet padding trimmed", LinkEthernet, append(eth(0x0800, nil, udp), 0, 0, 0, 0), OK, "hello", 0},
		{"first fragment classified", LinkRaw, ipv4UDP([]byte("frag"), 0, true), OK, "frag", 0},
		{"later fragment counted", LinkRaw, ipv4UDP([]byte("frag"), 185, false), Fragment, "", 0},
		{"ipv6 hop-by-hop then tcp", LinkEthernet, eth(0x86dd, nil, ipv6TCP(hop, 0, []byte("x"))), OK, "x", 0},
		{"ipv6 plain tcp", LinkRaw, ipv6TCP(nil, ProtoTCP, []byte("abc")), OK, "abc", 0},
		{"arp", LinkEthernet, eth(0x0806, nil, make([]byte, 28)), NotIP, "", 0},
		{"truncated ipv4", LinkRaw, udp[:15], Malformed, "", 0},
		{"truncated udp", LinkRaw, udp[:24], Malformed, "", 0},
	}
	for _, c := range cases {
		var m Meta
		got := Decode(c.link, c.frame, &m)
		if got != c.want {
			t.Errorf("%s: result %d, want %d", c.name, got, c.want)
			continue
		}
		if got == OK && (string(m.Payload) != c.payload || m.PayloadLen != len(c.payload) || m.VLAN != c.vlan) {
			t.Errorf("%s: payload %q len %d vlan %d", c.name, m.Payload, m.PayloadLen, m.VLAN)
		}
	}
}

func TestDecodeKeepsWireLengthOfCutCapture(t *testing.T) {
	udp := ipv4UDP(make([]byte, 1000), 0, false)
	var m Meta
	if Decode(LinkRaw, udp[:200], &m) != OK {
		t.Fatal("snaplen-cut packet not decoded")
	}
	if m.PayloadLen != 1000 || len(m.Payload) != 200-28 {
		t.Fatalf("payload len %d, captured %d", m.PayloadLen, len(m.Payload))
	}
	if m.SrcAddr() != netip.MustParseAddr("10.0.0.1") || m.DstPort != 51413 {
		t.Fatalf("addresses %v %d", m.SrcAddr(), m.DstPort)
	}
}

func TestIPv6ExtensionHeadersAreBounded(t *testing.T) {
	var ext []byte
	for i := 0; i < MaxIPv6ExtHdrs+1; i++ {
		ext = append(ext, ipv6DestOpts, 0, 0, 0, 0, 0, 0, 0)
	}
	ext[len(ext)-8] = ProtoTCP
	var m Meta
	if got := Decode(LinkRaw, ipv6TCP(ext, ipv6DestOpts, nil), &m); got != Malformed {
		t.Fatalf("%d extension headers: result %d", MaxIPv6ExtHdrs+1, got)
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	f := eth(0x0800, []uint16{0x8100}, ipv4UDP([]byte("hello"), 0, false))
	var m Meta
	if n := testing.AllocsPerRun(100, func() { Decode(LinkEthernet, f, &m) }); n != 0 {
		t.Fatalf("%v allocations per decode", n)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(uint16(LinkEthernet), eth(0x0800, []uint16{0x8100}, ipv4UDP([]byte("hello"), 0, false)))
	f.Add(uint16(LinkRaw), ipv6TCP([]byte{ProtoTCP, 0, 0, 0, 0, 0, 0, 0}, 0, []byte("x")))
	f.Add(uint16(LinkLinuxSL2), append(append([]byte{0x86, 0xdd}, make([]byte, 18)...), ipv6TCP(nil, ProtoTCP, nil)...))
	f.Add(uint16(LinkNull), []byte{30, 0, 0, 0, 0x60})
	f.Fuzz(func(t *testing.T, link uint16, b []byte) {
		var m Meta
		if Decode(LinkType(link), b, &m) == OK {
			if len(m.Payload) > m.PayloadLen || !m.SrcAddr().IsValid() {
				t.Fatalf("payload %d > wire %d or no address", len(m.Payload), m.PayloadLen)
			}
		}
	})
}

// Netip agrees with netip's own conversion and unmapping on IPv4, mapped,
// IPv6 and edge addresses, and on pseudo-random ones.
func TestAddr16Netip(t *testing.T) {
	check := func(b [16]byte) {
		t.Helper()
		if got, want := AddrFrom16(b).Netip(), netip.AddrFrom16(b).Unmap(); got != want {
			t.Fatalf("%x: Netip %v, netip %v", b, got, want)
		}
	}
	for _, s := range []string{"10.0.0.1", "0.0.0.0", "255.255.255.255", "::ffff:0:0", "::", "::1",
		"2001:db8::1", "::fffe:a00:1", "ff15::efc0:988f", "0:0:0:0:1:ffff:a00:1"} {
		check(netip.MustParseAddr(s).As16())
	}
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i < 10000; i++ {
		var b [16]byte
		for j := range b {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			b[j] = byte(x)
		}
		if i%2 == 0 { // half of them IPv4-mapped
			copy(b[:12], []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
		}
		check(b)
	}
}
