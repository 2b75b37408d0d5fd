package packet

import (
	"encoding/binary"
	"testing"
)

// layerCheck is what every layer's fuzz target asserts: no panic, and a
// flow's payload never longer than its wire length.
func layerCheck(t *testing.T, r Result, m *Meta) {
	t.Helper()
	if r == OK && (len(m.Payload) > m.PayloadLen || !m.SrcAddr().IsValid()) {
		t.Fatalf("payload %d > wire %d, or no address", len(m.Payload), m.PayloadLen)
	}
	if m.depth > MaxEncap {
		t.Fatalf("depth %d past MaxEncap", m.depth)
	}
}

func pppoeFrame(proto uint16, ip []byte) []byte {
	b := []byte{0x11, 0, 0x12, 0x34, 0, 0}
	binary.BigEndian.PutUint16(b[4:], uint16(len(ip)+2))
	b = binary.BigEndian.AppendUint16(b, proto)
	return append(b, ip...)
}

func FuzzPPPoE(f *testing.F) {
	f.Add(pppoeFrame(pppIPv4, ipv4UDP([]byte("x"), 0, false)))
	f.Add(pppoeFrame(pppIPv6, ipv6TCP(nil, ProtoTCP, []byte("y"))))
	f.Add(pppoeFrame(0xc021, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Meta
		layerCheck(t, decodePPPoE(b, &m), &m)
	})
}

func FuzzPPP(f *testing.F) {
	f.Add(append([]byte{0xff, 0x03, 0x00, 0x21}, ipv4UDP([]byte("x"), 0, false)...))
	f.Add(append([]byte{0x21}, ipv4UDP(nil, 0, false)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Meta
		layerCheck(t, decodePPP(b, &m), &m)
	})
}

func FuzzMPLS(f *testing.F) {
	f.Add(append([]byte{0, 0x3e, 0x80, 64, 0, 0x7d, 0x01, 64}, ipv4UDP([]byte("x"), 0, false)...))
	f.Add(append([]byte{0, 0x7d, 0x01, 64, 0, 0, 0, 0}, eth(0x0800, nil, ipv4UDP(nil, 0, false))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Meta
		layerCheck(t, decodeMPLS(b, &m), &m)
	})
}

func FuzzGRE(f *testing.F) {
	f.Add(append([]byte{0x20, 0, 0x08, 0, 0, 0, 0xab, 0xcd}, ipv4UDP([]byte("x"), 0, false)...))
	f.Add(append([]byte{0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 42, 0, 0, 0, 0}, eth(0x0800, nil, ipv4UDP(nil, 0, false))...))
	f.Add(append([]byte{0, 0, 0x22, 0xeb, 0x20, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 0}, eth(0x86dd, nil, ipv6TCP(nil, ProtoTCP, nil))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Meta
		layerCheck(t, decodeGRE(b, &m), &m)
	})
}

// udpTunnel is an IPv4 UDP datagram between the given ports around p.
func udpTunnel(sp, dp uint16, p []byte) []byte {
	b := ipv4UDP(p, 0, false)
	binary.BigEndian.PutUint16(b[20:], sp)
	binary.BigEndian.PutUint16(b[22:], dp)
	return b
}

func FuzzUDPTunnel(f *testing.F) {
	inner := ipv4UDP([]byte("inner"), 0, false)
	gtp := append([]byte{0x30, 0xff, 0, byte(len(inner)), 0, 0, 0x11, 0x11}, inner...)
	vx := append([]byte{0x08, 0, 0, 0, 0, 0x13, 0x88, 0}, eth(0x0800, nil, inner)...)
	gen := append([]byte{0, 0, 0x65, 0x58, 0, 0x17, 0x70, 0}, eth(0x0800, nil, inner)...)
	f.Add(uint16(2152), uint16(2152), gtp)
	f.Add(uint16(50000), uint16(4789), vx)
	f.Add(uint16(50000), uint16(6081), gen)
	f.Add(uint16(3544), uint16(50000), ipv6TCP(nil, ProtoTCP, nil))
	f.Fuzz(func(t *testing.T, sp, dp uint16, p []byte) {
		var m Meta
		layerCheck(t, decodeIPv4(udpTunnel(sp, dp, p), &m), &m)
	})
}

// Encapsulation nested past MaxEncap is counted, not followed.
func TestTooDeep(t *testing.T) {
	b := ipv4UDP([]byte("x"), 0, false)
	for range MaxEncap + 1 {
		o := make([]byte, 20, 20+len(b))
		o[0], o[9] = 0x45, protoIPIP
		binary.BigEndian.PutUint16(o[2:], uint16(20+len(b)))
		b = append(o, b...)
	}
	var m Meta
	if r := Decode(LinkRaw, b, &m); r != TooDeep {
		t.Fatalf("%d nested IP-in-IP: result %d, want TooDeep", MaxEncap+1, r)
	}
	if r := Decode(LinkRaw, b[20:], &m); r != OK || m.Encap != EncapIPinIP {
		t.Fatalf("%d nested: result %d, encap %v", MaxEncap, r, m.Encap)
	}
}

// A datagram on a tunnel port whose header is not exactly the tunnel's is
// an ordinary UDP flow (a BitTorrent client may listen on 4789 or 2152).
func TestTunnelPortWithoutTunnelIsUDP(t *testing.T) {
	for _, c := range []struct{ sp, dp uint16 }{{2152, 40000}, {40000, 4789}, {40000, 6081}, {3544, 40000}} {
		var m Meta
		b := udpTunnel(c.sp, c.dp, []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"))
		if r := Decode(LinkRaw, b, &m); r != OK || m.Encap != 0 || m.SrcPort != c.sp {
			t.Fatalf("ports %d>%d: result %d, encap %v, ports %d>%d", c.sp, c.dp, r, m.Encap, m.SrcPort, m.DstPort)
		}
	}
}
