// Package wrap puts the frames of a capture inside the encapsulations an
// ISP edge carries (PPPoE, MPLS, GRE, ERSPAN, GTP-U, VXLAN, Geneve,
// IP-in-IP, stacked VLANs, the PPP and Cisco HDLC link types), built with
// gopacket's layer serialization. This machine's kernel has none of those
// tunnels but VXLAN, so tests and the bridge harness get encapsulated
// traffic by wrapping real captured frames in userspace.
//
// Both directions of a flow ride the two directions of the outer path
// (tunnel endpoints, MACs, MPLS labels and TEIDs swap), as on a real link;
// the separating ids (PPPoE session, VNI, GRE key) are the same both ways.
// Lengths are the wire's: a frame the capture's snaplen cut is wrapped as
// if whole, its outer length fields counting the inner packet's wire
// length, and written cut again (the record's original length says how
// long it was).
package wrap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/shard"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// Kinds of wrapping.
const (
	PPPoE   = "pppoe"   // PPPoE session 0x1234 over Ethernet, PPP IPv4/IPv6
	MPLS    = "mpls"    // two MPLS labels (per direction), then IP
	MPLSPW  = "mpls-pw" // MPLS, pseudowire control word, the whole Ethernet frame
	GRE     = "gre"     // IPv4 GRE with key 0xabcd, then IP
	ERSPAN2 = "erspan2" // IPv4 GRE (sequenced) with ERSPAN type II session 42, the whole Ethernet frame
	GTPU    = "gtpu"    // IPv4 UDP 2152 GTP-U G-PDU, TEID per direction, then IP
	VXLAN   = "vxlan"   // IPv4 UDP 4789 VXLAN VNI 5000, the whole Ethernet frame
	Geneve  = "geneve"  // IPv4 UDP 6081 Geneve VNI 6000, the whole Ethernet frame
	IPinIP  = "ipip"    // IPv4 outer: 4in4 or 6in4 by the inner packet
	IP6inIP = "ip6ip"   // IPv6 outer: 4in6 or 6in6
	QinQ3   = "qinq3"   // three VLAN tags 100, 200, 300
	PPP     = "ppp"     // link type PPP (9): 0xff 0x03 and the protocol, then IP
	CHDLC   = "chdlc"   // link type Cisco HDLC (104): 0x0f 0x00 and the EtherType, then IP
)

// Kinds lists every kind.
func Kinds() []string {
	return []string{PPPoE, MPLS, MPLSPW, GRE, ERSPAN2, GTPU, VXLAN, Geneve, IPinIP, IP6inIP, QinQ3, PPP, CHDLC}
}

// The ids the wrapped frames carry (tests check them in the decoder and
// with tshark).
const (
	Session   = 0x1234
	LabelUp   = 1000 // bottom label from the flow's initiator; +1 the other way
	GREKey    = 0xabcd
	ERSPANID  = 42
	TEIDUp    = 0x1111 // from the flow's initiator; TEIDDown the other way
	TEIDDown  = 0x2222
	VXLANVNI  = 5000
	GeneveVNI = 6000
)

// Tunnel endpoints (addresses outside anything the captures use).
var (
	tunA4, tunB4 = net.IPv4(10, 200, 0, 1).To4(), net.IPv4(10, 200, 0, 2).To4()
	tunA6, tunB6 = net.ParseIP("fd00:200::1"), net.ParseIP("fd00:200::2")
	macA, macB   = net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
)

// Stats counts a wrapping.
type Stats struct {
	Wrapped, Skipped int // skipped: not Ethernet/IP
}

// File wraps every Ethernet frame of in that carries IPv4 or IPv6 and
// writes them to out (classic pcap, nanosecond).
func File(kind, in, out string) (Stats, error) {
	link := layers.LinkTypeEthernet
	switch kind {
	case PPP:
		link = layers.LinkTypePPP
	case CHDLC:
		link = layers.LinkTypeC_HDLC
	}
	return copyFrames(in, out, link, newWrapper(kind).wrap)
}

// copyFrames writes to out what each frame of in becomes through conv (a
// frame, its length on the wire, and false to leave the frame out).
func copyFrames(in, out string, link layers.LinkType, conv func(packet.LinkType, []byte) ([]byte, int, bool, error)) (Stats, error) {
	var st Stats
	r, err := pcapsrc.Open(in)
	if err != nil {
		return st, err
	}
	defer r.Close()
	f, w, err := create(out, link)
	if err != nil {
		return st, err
	}
	for {
		frame, lt, ts, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			var data []byte
			var wire int
			var ok bool
			data, wire, ok, err = conv(lt, frame)
			if err == nil && !ok {
				st.Skipped++
				continue
			}
			if err == nil {
				err = w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: wire}, data)
			}
		}
		if err != nil {
			f.Close()
			return st, fmt.Errorf("wrap: %s: %w", in, err)
		}
		st.Wrapped++
	}
	if err := f.Close(); err != nil {
		return st, fmt.Errorf("wrap: %w", err)
	}
	return st, nil
}

// create opens out as a nanosecond classic pcap of the given link type.
func create(out string, link layers.LinkType) (*os.File, *pcapgo.Writer, error) {
	f, err := os.Create(out)
	if err != nil {
		return nil, nil, fmt.Errorf("wrap: %w", err)
	}
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(65535, link); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("wrap: %s: %w", out, err)
	}
	return f, w, nil
}

// wrapper wraps frames of one capture, remembering each flow's initiator.
type wrapper struct {
	kind string
	vni  uint32 // VXLAN's (default VXLANVNI)
	init map[shard.Key]packet.Addr16
	buf  gopacket.SerializeBuffer
	seq  uint32
}

func newWrapper(kind string) *wrapper {
	return &wrapper{kind: kind, vni: VXLANVNI, init: map[shard.Key]packet.Addr16{}, buf: gopacket.NewSerializeBuffer()}
}

// wrap returns frame inside w's encapsulation (cut where frame was cut) and
// its length on the wire; false for frames it does not wrap.
func (w *wrapper) wrap(lt packet.LinkType, frame []byte) ([]byte, int, bool, error) {
	if lt != packet.LinkEthernet || len(frame) < 14 {
		return nil, 0, false, nil
	}
	var m packet.Meta
	res := packet.Decode(lt, frame, &m)
	if res != packet.OK && res != packet.Fragment && res != packet.OtherL4 {
		return nil, 0, false, nil
	}
	if m.Encap != 0 {
		return nil, 0, false, nil // tagged or tunnelled already
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	ip := frame[14:]
	// The whole inner packet, zero-filled past the capture's cut, and the
	// whole inner Ethernet frame.
	ipWire := make([]byte, max(m.WireLen, len(ip)))
	copy(ipWire, ip)
	ethWire := append(append([]byte{}, frame[:14]...), ipWire...)
	cut := len(frame) - 14 // inner IP bytes captured
	down := w.direction(&m, res)
	v6 := et == 0x86dd

	var ls []gopacket.SerializableLayer
	inner := ipWire
	innerCut := cut
	eth := func(t layers.EthernetType) *layers.Ethernet {
		e := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: t}
		if down {
			e.SrcMAC, e.DstMAC = macB, macA
		}
		return e
	}
	ip4 := func(p layers.IPProtocol) *layers.IPv4 {
		o := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: p, SrcIP: tunA4, DstIP: tunB4}
		if down {
			o.SrcIP, o.DstIP = tunB4, tunA4
		}
		return o
	}
	udp := func(sport, dport uint16) *layers.UDP {
		return &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	}
	wholeEthernet := func() { inner, innerCut = ethWire, len(frame) }
	pppProto := layers.PPPTypeIPv4
	if v6 {
		pppProto = layers.PPPTypeIPv6
	}
	switch w.kind {
	case PPPoE:
		ls = []gopacket.SerializableLayer{eth(layers.EthernetTypePPPoESession),
			&layers.PPPoE{Version: 1, Type: 1, Code: layers.PPPoECodeSession, SessionId: Session},
			&layers.PPP{PPPType: pppProto}}
	case MPLS, MPLSPW:
		l := uint32(LabelUp)
		if down {
			l++
		}
		ls = []gopacket.SerializableLayer{eth(layers.EthernetTypeMPLSUnicast),
			&layers.MPLS{Label: l + 1000, TTL: 64}, &layers.MPLS{Label: l, StackBottom: true, TTL: 64}}
		if w.kind == MPLSPW {
			wholeEthernet()
			inner = append(make([]byte, 4), inner...) // control word 0
			innerCut += 4
		}
	case GRE:
		t := layers.EthernetTypeIPv4
		if v6 {
			t = layers.EthernetTypeIPv6
		}
		ls = []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolGRE),
			&layers.GRE{KeyPresent: true, Key: GREKey, Protocol: t}}
	case ERSPAN2:
		w.seq++
		wholeEthernet()
		ls = []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolGRE),
			&layers.GRE{SeqPresent: true, Seq: w.seq, Protocol: layers.EthernetTypeERSPAN},
			&layers.ERSPANII{Version: layers.ERSPANIIVersion, SessionID: ERSPANID}}
	case GTPU:
		teid := uint32(TEIDUp)
		if down {
			teid = TEIDDown
		}
		ls = []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp(2152, 2152),
			&layers.GTPv1U{Version: 1, ProtocolType: 1, MessageType: 0xff, TEID: teid}}
	case VXLAN:
		wholeEthernet()
		ls = []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp(49152+uint16(len(w.init)%1000), 4789),
			&layers.VXLAN{ValidIDFlag: true, VNI: w.vni}}
	case Geneve:
		wholeEthernet()
		ls = []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp(49152+uint16(len(w.init)%1000), 6081),
			&layers.Geneve{Protocol: layers.EthernetTypeTransparentEthernetBridging, VNI: GeneveVNI}}
	case IPinIP:
		p := layers.IPProtocolIPv4
		if v6 {
			p = layers.IPProtocolIPv6
		}
		ls = []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4), ip4(p)}
	case IP6inIP:
		p := layers.IPProtocolIPv4
		if v6 {
			p = layers.IPProtocolIPv6
		}
		o := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: p, SrcIP: tunA6, DstIP: tunB6}
		if down {
			o.SrcIP, o.DstIP = tunB6, tunA6
		}
		ls = []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv6), o}
	case QinQ3:
		ls = []gopacket.SerializableLayer{eth(layers.EthernetTypeQinQ),
			&layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 200, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 300, Type: layers.EthernetType(et)}}
	case PPP:
		ls = []gopacket.SerializableLayer{&layers.PPP{PPPType: pppProto, HasPPTPHeader: true}}
	case CHDLC:
		hdr := []byte{0x0f, 0x00, byte(et >> 8), byte(et)}
		out := append(hdr, inner[:innerCut]...)
		return out, len(hdr) + len(inner), true, nil
	default:
		return nil, 0, false, fmt.Errorf("wrap: unknown kind %q (want one of %v)", w.kind, Kinds())
	}
	if err := w.buf.Clear(); err != nil {
		return nil, 0, false, err
	}
	if err := gopacket.SerializeLayers(w.buf, gopacket.SerializeOptions{FixLengths: true}, append(ls, gopacket.Payload(inner))...); err != nil {
		return nil, 0, false, fmt.Errorf("wrap %s: %w", w.kind, err)
	}
	b := w.buf.Bytes()
	outer := len(b) - len(inner)
	ipv4Checksums(b)
	out := append([]byte(nil), b[:outer+innerCut]...)
	return out, len(b), true, nil
}

// direction is whether m goes from its flow's responder to its initiator
// (the first source seen): the outer path's other direction.
func (w *wrapper) direction(m *packet.Meta, res packet.Result) bool {
	if res != packet.OK {
		return false
	}
	var k shard.Key
	k.Set(m)
	src, ok := w.init[k]
	if !ok {
		w.init[k] = m.Src
		return false
	}
	return src != m.Src
}

// ipv4Checksums fills the header checksum of every outer IPv4 header
// before the first inner payload byte: gopacket computes checksums only
// together with the transport's, which would cover the zero fill.
func ipv4Checksums(b []byte) {
	off := 12
	for off+2 <= len(b) {
		et := binary.BigEndian.Uint16(b[off : off+2])
		off += 2
		if et == 0x8100 || et == 0x88a8 {
			off += 2
			continue
		}
		if et != 0x0800 || len(b) < off+20 {
			return
		}
		h := b[off : off+20]
		h[10], h[11] = 0, 0
		var s uint32
		for i := 0; i < 20; i += 2 {
			s += uint32(binary.BigEndian.Uint16(h[i:]))
		}
		for s > 0xffff {
			s = s&0xffff + s>>16
		}
		binary.BigEndian.PutUint16(h[10:], ^uint16(s))
		return
	}
}

// Unwrap writes the inner Ethernet frames of in's VXLAN frames to out: the
// bare capture of a swarm recorded on a VXLAN underlay, to wrap otherwise.
func Unwrap(in, out string) (Stats, error) {
	return copyFrames(in, out, layers.LinkTypeEthernet, func(lt packet.LinkType, frame []byte) ([]byte, int, bool, error) {
		var m packet.Meta
		const outer = 14 + 20 + 8 + 8 // Ethernet, IPv4 without options, UDP, VXLAN
		if lt != packet.LinkEthernet || packet.Decode(lt, frame, &m) == packet.Malformed || m.Encap != packet.EncapVXLAN ||
			len(frame) <= outer || frame[14] != 0x45 {
			return nil, 0, false, nil
		}
		inner := frame[outer:]
		wire := 14 + int(binary.BigEndian.Uint16(frame[16:18])) - (outer - 14)
		return inner, max(wire, len(inner)), true, nil
	})
}
