// Package packet decodes the L2/L3/L4 headers of one frame into a Meta value.
//
// It is the first stage of the swarmguard data path, shared by the live AF_XDP
// source and the offline pcap source. Decode never allocates and never copies
// the payload: Meta.Payload is a sub-slice of the frame.
package packet

import (
	"encoding/binary"
	"net/netip"
)

// LinkType says how a frame starts. The values are the pcap LINKTYPE_ numbers.
type LinkType uint16

// Link types swarmguard decodes.
const (
	LinkNull     LinkType = 0   // BSD loopback: 4-byte host-order address family
	LinkEthernet LinkType = 1   // Ethernet II, optionally 802.1Q / 802.1ad tagged
	LinkRaw      LinkType = 101 // raw IPv4 or IPv6, version from the first nibble
	LinkLinuxSLL LinkType = 113 // Linux cooked capture v1 (16-byte header)
	LinkIPv4     LinkType = 228
	LinkIPv6     LinkType = 229
	LinkLinuxSL2 LinkType = 276 // Linux cooked capture v2 (20-byte header)
	LinkLoop     LinkType = 108 // OpenBSD loopback: like LinkNull in network order
	LinkPPP      LinkType = 9   // PPP: optional 0xff 0x03, then a 1- or 2-byte protocol
	LinkPPPHDLC  LinkType = 50  // PPP in HDLC-like framing (0xff 0x03 protocol)
	LinkPPPoE    LinkType = 51  // PPPoE session header, no Ethernet
	LinkCHDLC    LinkType = 104 // Cisco HDLC: address, control, EtherType
)

// Supported reports whether Decode understands frames of this link type.
func (l LinkType) Supported() bool {
	switch l {
	case LinkNull, LinkEthernet, LinkRaw, LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkLinuxSL2, LinkLoop,
		LinkPPP, LinkPPPHDLC, LinkPPPoE, LinkCHDLC:
		return true
	}
	return false
}

// IP protocol numbers.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// Result says how far Decode got.
type Result uint8

// Decode results. Only OK and Fragment carry addresses; only OK carries ports.
const (
	OK        Result = iota // TCP or UDP with ports and payload
	Fragment                // a non-first IPv4/IPv6 fragment: addresses only
	NotIP                   // ARP, LLDP, ... : nothing to classify
	OtherL4                 // ICMP, ESP, ... : addresses only
	Malformed               // a header is cut short or inconsistent
	TooDeep                 // more encapsulation than MaxEncap: counted, not followed
)

// Limits that bound the work done on hostile input.
const (
	MaxVLANTags     = 4 // QinQ and deeper stacks
	MaxEncap        = 4 // tunnels (PPPoE, MPLS, GRE, GTP-U, VXLAN, Geneve, IP-in-IP, Teredo) one frame may cross
	MaxMPLSLabels   = 8
	MaxIPv6ExtHdrs  = 6
	ethHeaderLen    = 14
	vlanTagLen      = 4
	ipv4MinLen      = 20
	ipv6HeaderLen   = 40
	tcpMinLen       = 20
	udpHeaderLen    = 8
	sllHeaderLen    = 16
	sll2HeaderLen   = 20
	nullHeaderLen   = 4
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86dd
	etherTypeVLAN   = 0x8100
	etherTypeQinQ   = 0x88a8
	etherTypeQinQ2  = 0x9100
	ipv6HopByHop    = 0
	ipv6Routing     = 43
	ipv6Fragment    = 44
	ipv6DestOpts    = 60
	ipv6NoNext      = 59
	ipv6AuthHeader  = 51
	tcpFlagsOffset  = 13
	ipv4FlagMF      = 0x2000
	ipv4FragOffMask = 0x1fff
)

// TCP flag bits as they appear in the TCP header.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
)

// Addr16 is an address in its 16-byte IPv6 form (IPv4 mapped) as two
// big-endian words: compared as numbers they order like the bytes, and
// every read and write of one is word-sized, which keeps the flow key's
// construction free of store-forwarding stalls.
type Addr16 [2]uint64

// AddrWords is a as the decoder writes it: IPv4 as ::ffff:a.b.c.d, both
// words big-endian (the inverse of Netip).
func AddrWords(a netip.Addr) Addr16 {
	b := a.As16()
	return Addr16{binary.BigEndian.Uint64(b[0:8]), binary.BigEndian.Uint64(b[8:16])}
}

// Netip returns a as a netip.Addr, IPv4 unmapped.
func (a Addr16) Netip() netip.Addr {
	if a[0] == 0 && a[1]>>32 == 0xffff { // IPv4: straight from the word, no byte round trip
		v := uint32(a[1])
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], a[0])
	binary.BigEndian.PutUint64(b[8:16], a[1])
	return netip.AddrFrom16(b).Unmap()
}

// Meta is what the rest of the pipeline needs from one frame. Addresses are
// Addr16 values, which is what the flow key is made of; SrcAddr and DstAddr
// give netip values off the fast path. Only the fields the Result promises
// are valid.
type Meta struct {
	Src, Dst         Addr16
	IPv6             bool
	SrcPort, DstPort uint16
	Proto            uint8 // IP protocol number
	TCPFlags         uint8
	VLAN             uint16 // innermost VLAN id, 0 when untagged
	// Path identifies the subscriber path the frame came by, as far as it is
	// the same both ways: its VLAN tags (one tag: its id; two: outer<<12 |
	// inner), folded with the PPPoE session, VXLAN/Geneve VNI and GRE key
	// into 24 bits. It is part of the flow key: two subscribers with the
	// same inner address on different paths are two hosts.
	Path  uint32
	Encap Encap // the encapsulations crossed; the fields below are valid for those set
	// Outer context: the outermost VLAN id, the PPPoE session, the innermost
	// MPLS label, the GTP-U TEID, the VXLAN/Geneve VNI, the GRE key or ERSPAN
	// session, and the innermost IP tunnel's outer addresses. Each is valid
	// only when its encapsulation is in Encap (they are not cleared between
	// frames).
	OuterVLAN             uint16
	Session               uint16
	Label, TEID, VNI, Key uint32
	TunnelSrc, TunnelDst  Addr16
	depth                 uint8  // tunnels crossed so far
	WireLen               int    // IP datagram length as the IP header states it
	PayloadLen            int    // L4 payload length on the wire (from the IP/UDP lengths)
	Payload               []byte // L4 payload as captured: at most PayloadLen bytes, fewer if the capture was cut
}

// v4mapped is the high bits of the low word of an IPv4-mapped address.
const v4mapped = 0xffff << 32

// SrcAddr is the source address (IPv4 unmapped).
func (m *Meta) SrcAddr() netip.Addr { return m.Src.Netip() }

// DstAddr is the destination address (IPv4 unmapped).
func (m *Meta) DstAddr() netip.Addr { return m.Dst.Netip() }

// Decode parses one frame of the given link type into m and reports how far it got.
// m is overwritten; its Payload aliases frame.
func Decode(link LinkType, frame []byte, m *Meta) Result {
	m.VLAN, m.TCPFlags, m.Path, m.Encap, m.depth = 0, 0, 0, 0, 0
	switch link {
	case LinkPPP, LinkPPPHDLC:
		return decodePPP(frame, m)
	case LinkPPPoE:
		return decodePPPoE(frame, m)
	case LinkCHDLC:
		if len(frame) < 4 {
			return Malformed
		}
		return decodeEtherType(binary.BigEndian.Uint16(frame[2:4]), frame[4:], m)
	case LinkEthernet:
		return decodeEthernet(frame, m)
	case LinkRaw:
		return decodeIPByVersion(frame, m)
	case LinkIPv4:
		return decodeIPv4(frame, m)
	case LinkIPv6:
		return decodeIPv6(frame, m)
	case LinkLinuxSLL:
		if len(frame) < sllHeaderLen {
			return Malformed
		}
		return decodeEtherType(binary.BigEndian.Uint16(frame[14:16]), frame[sllHeaderLen:], m)
	case LinkLinuxSL2:
		if len(frame) < sll2HeaderLen {
			return Malformed
		}
		return decodeEtherType(binary.BigEndian.Uint16(frame[0:2]), frame[sll2HeaderLen:], m)
	case LinkNull, LinkLoop:
		if len(frame) < nullHeaderLen {
			return Malformed
		}
		// The family is in the writer's byte order (network order for LinkLoop);
		// the IP version nibble is a sturdier guide than the many AF_INET6 values.
		return decodeIPByVersion(frame[nullHeaderLen:], m)
	}
	return NotIP
}

func decodeEthernet(b []byte, m *Meta) Result {
	if len(b) < ethHeaderLen {
		return Malformed
	}
	et := binary.BigEndian.Uint16(b[12:14])
	b = b[ethHeaderLen:]
	if et == etherTypeIPv4 { // the common case, without the dispatch
		return decodeIPv4(b, m)
	}
	for i := 0; i <= MaxVLANTags && (et == etherTypeVLAN || et == etherTypeQinQ || et == etherTypeQinQ2); i++ {
		if i == MaxVLANTags || len(b) < vlanTagLen {
			return Malformed
		}
		m.tag(binary.BigEndian.Uint16(b[0:2]) & 0x0fff)
		et = binary.BigEndian.Uint16(b[2:4])
		b = b[vlanTagLen:]
	}
	return decodeEtherType(et, b, m)
}

// tag notes one VLAN tag, outermost first. The path of one tag is its id,
// of two tags outer<<12 | inner (an S-VLAN and C-VLAN pair exactly); more
// tags, or tags inside a tunnel, are folded in.
func (m *Meta) tag(id uint16) {
	switch {
	case m.Encap == 0:
		m.Path = uint32(id)
		m.OuterVLAN = id
	case m.Encap == EncapVLAN:
		m.Path = m.Path<<12 | uint32(id)
		m.Encap |= EncapQinQ
	default:
		if m.Encap&EncapVLAN == 0 {
			m.OuterVLAN = id
		} else {
			m.Encap |= EncapQinQ
		}
		m.Path = mixPath(m.Path, EncapVLAN, uint32(id))
	}
	m.Encap |= EncapVLAN
	m.VLAN = id
}

func decodeEtherType(et uint16, b []byte, m *Meta) Result {
	switch et {
	case etherTypeIPv4:
		return decodeIPv4(b, m)
	case etherTypeIPv6:
		return decodeIPv6(b, m)
	case etherTypeVLAN, etherTypeQinQ, etherTypeQinQ2:
		// A tag after a cooked header, or inside a tunnel's Ethernet frame
		// (decodeEthernet walks the others).
		if len(b) < vlanTagLen {
			return Malformed
		}
		m.tag(binary.BigEndian.Uint16(b[0:2]) & 0x0fff)
		next := binary.BigEndian.Uint16(b[2:4])
		if next == etherTypeVLAN || next == etherTypeQinQ || next == etherTypeQinQ2 {
			return Malformed
		}
		return decodeEtherType(next, b[vlanTagLen:], m)
	case etherTypePPPoE:
		return decodePPPoE(b, m)
	case etherTypeMPLS, etherTypeMPLSMulti:
		return decodeMPLS(b, m)
	}
	return NotIP
}

func decodeIPByVersion(b []byte, m *Meta) Result {
	if len(b) < 1 {
		return Malformed
	}
	switch b[0] >> 4 {
	case 4:
		return decodeIPv4(b, m)
	case 6:
		return decodeIPv6(b, m)
	}
	return NotIP
}

func decodeIPv4(b []byte, m *Meta) Result {
	if len(b) < ipv4MinLen || b[0]>>4 != 4 {
		return Malformed
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total == 0 && len(b) > 0xffff {
		total = len(b) // a TSO super-packet captured before segmentation
	}
	if ihl < ipv4MinLen || len(b) < ihl || total < ihl {
		return Malformed
	}
	m.Src = Addr16{0, v4mapped | uint64(binary.BigEndian.Uint32(b[12:16]))}
	m.Dst = Addr16{0, v4mapped | uint64(binary.BigEndian.Uint32(b[16:20]))}
	m.IPv6 = false
	m.Proto = b[9]
	m.WireLen = total
	if total < len(b) {
		b = b[:total] // drop Ethernet padding
	}
	frag := binary.BigEndian.Uint16(b[6:8])
	if frag&ipv4FragOffMask != 0 {
		return Fragment
	}
	// A first fragment (MF set, offset 0) carries the L4 header: classify it.
	return decodeL4(b[ihl:], total-ihl, m)
}

func decodeIPv6(b []byte, m *Meta) Result {
	if len(b) < ipv6HeaderLen || b[0]>>4 != 6 {
		return Malformed
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	m.Src = Addr16{binary.BigEndian.Uint64(b[8:16]), binary.BigEndian.Uint64(b[16:24])}
	m.Dst = Addr16{binary.BigEndian.Uint64(b[24:32]), binary.BigEndian.Uint64(b[32:40])}
	m.IPv6 = true
	m.WireLen = ipv6HeaderLen + plen
	next := b[6]
	b = b[ipv6HeaderLen:]
	if plen < len(b) {
		b = b[:plen]
	}
	rem := plen // wire bytes left after the headers walked so far
	for i := 0; ; i++ {
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
			if i == MaxIPv6ExtHdrs || len(b) < 8 {
				return Malformed
			}
			n := (int(b[1]) + 1) * 8
			if len(b) < n {
				return Malformed
			}
			next, b, rem = b[0], b[n:], rem-n
		case ipv6AuthHeader:
			if i == MaxIPv6ExtHdrs || len(b) < 8 {
				return Malformed
			}
			n := (int(b[1]) + 2) * 4
			if len(b) < n {
				return Malformed
			}
			next, b, rem = b[0], b[n:], rem-n
		case ipv6Fragment:
			if i == MaxIPv6ExtHdrs || len(b) < 8 {
				return Malformed
			}
			off := binary.BigEndian.Uint16(b[2:4]) >> 3
			next, b, rem = b[0], b[8:], rem-8
			if off != 0 {
				m.Proto = next
				return Fragment
			}
		default:
			m.Proto = next
			return decodeL4(b, rem, m)
		}
	}
}

// decodeL4 reads the TCP or UDP header; IP-in-IP (4in4, 6in4, 4in6, 6in6),
// GRE and the UDP tunnels carry another frame, which it decodes instead.
func decodeL4(b []byte, wire int, m *Meta) Result {
	switch m.Proto {
	case protoIPIP, protoIPv6:
		return m.innerIP(b, EncapIPinIP)
	case protoGRE:
		return decodeGRE(b, m)
	case ProtoTCP:
		if len(b) < tcpMinLen {
			return Malformed
		}
		off := int(b[12]>>4) * 4
		if off < tcpMinLen || len(b) < off {
			return Malformed
		}
		m.SrcPort = binary.BigEndian.Uint16(b[0:2])
		m.DstPort = binary.BigEndian.Uint16(b[2:4])
		m.TCPFlags = b[tcpFlagsOffset]
		m.PayloadLen = max(0, wire-off)
		m.Payload = b[off:min(len(b), off+m.PayloadLen)]
		return OK
	case ProtoUDP:
		if len(b) < udpHeaderLen {
			return Malformed
		}
		m.SrcPort = binary.BigEndian.Uint16(b[0:2])
		m.DstPort = binary.BigEndian.Uint16(b[2:4])
		ulen := int(binary.BigEndian.Uint16(b[4:6]))
		if ulen < udpHeaderLen || ulen > wire {
			ulen = wire // jumbo or lying length: trust the IP header
		}
		m.PayloadLen = max(0, ulen-udpHeaderLen)
		m.Payload = b[udpHeaderLen:min(len(b), udpHeaderLen+m.PayloadLen)]
		if m.SrcPort|m.DstPort >= 2152 && udpTunnelPort(m.SrcPort, m.DstPort) {
			return decodeUDPTunnel(m)
		}
		return OK
	}
	return OtherL4
}
