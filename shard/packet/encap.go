package packet

import "encoding/binary"

// Encap is a set of the encapsulations a frame crossed.
type Encap uint16

// Encapsulations.
const (
	EncapVLAN   Encap = 1 << iota // 802.1Q/802.1ad tags
	EncapQinQ                     // more than one tag
	EncapPPP                      // PPP link (LinkPPP, LinkPPPHDLC)
	EncapPPPoE                    // PPPoE session
	EncapMPLS                     // an MPLS label stack
	EncapGRE                      // GRE (RFC 2784/2890)
	EncapERSPAN                   // ERSPAN type I, II or III inside GRE
	EncapGTPU                     // GTP-U G-PDU (UDP 2152)
	EncapVXLAN                    // VXLAN (UDP 4789)
	EncapGeneve                   // Geneve (UDP 6081)
	EncapIPinIP                   // IPv4 or IPv6 directly in IPv4 or IPv6 (4in4, 6in4, 4in6, 6in6)
	EncapTeredo                   // IPv6 in UDP 3544 (Teredo)
)

// Names of the encapsulations, in bit order.
var encapNames = [...]string{"vlan", "qinq", "ppp", "pppoe", "mpls", "gre", "erspan", "gtpu", "vxlan", "geneve", "ipip", "teredo"}

// String lists the encapsulations as "pppoe+vlan", outermost kinds last.
func (e Encap) String() string {
	out := ""
	for i := len(encapNames) - 1; i >= 0; i-- {
		if e&(1<<i) != 0 {
			if out != "" {
				out += "+"
			}
			out += encapNames[i]
		}
	}
	return out
}

// Protocol numbers and EtherTypes of the encapsulations.
const (
	etherTypePPPoE     = 0x8864
	etherTypeMPLS      = 0x8847
	etherTypeMPLSMulti = 0x8848
	etherTypeTEB       = 0x6558 // transparent Ethernet bridging (GRE, Geneve)
	etherTypeERSPAN2   = 0x88be // ERSPAN type I (no GRE sequence) or II
	etherTypeERSPAN3   = 0x22eb
	protoIPIP          = 4
	protoIPv6          = 41
	protoGRE           = 47
	pppIPv4            = 0x0021
	pppIPv6            = 0x0057
	portGTPU           = 2152
	portVXLAN          = 4789
	portGeneve         = 6081
	portTeredo         = 3544
	maxGTPExt          = 4
)

// mixPath folds a separating identifier of kind k into a path: 24 bits.
func mixPath(p uint32, k Encap, id uint32) uint32 {
	h := (uint64(p)<<32 | uint64(id)) ^ uint64(k)<<48
	h *= 0x9e3779b97f4a7c15
	return uint32(h>>40) & 0xffffff
}

// enter counts one more tunnel of kind k; false past MaxEncap.
func (m *Meta) enter(k Encap) bool {
	if m.depth >= MaxEncap {
		return false
	}
	m.depth++
	m.Encap |= k
	return true
}

// innerIP decodes the IP packet a tunnel of kind k carries, keeping the
// current addresses as the tunnel's outer ones.
func (m *Meta) innerIP(b []byte, k Encap) Result {
	if !m.enter(k) {
		return TooDeep
	}
	m.TunnelSrc, m.TunnelDst = m.Src, m.Dst
	return decodeIPByVersion(b, m)
}

// innerEthernet decodes the Ethernet frame a tunnel of kind k carries (the
// caller has noted the tunnel's endpoints, if it has IP ones).
func (m *Meta) innerEthernet(b []byte, k Encap) Result {
	if !m.enter(k) {
		return TooDeep
	}
	return decodeEthernet(b, m)
}

// decodePPP reads a PPP frame: an optional HDLC address and control
// (0xff 0x03), then a protocol field of one byte (compressed, odd) or two.
func decodePPP(b []byte, m *Meta) Result {
	m.Encap |= EncapPPP
	if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 {
		b = b[2:]
	}
	if len(b) < 1 {
		return Malformed
	}
	proto := uint16(b[0])
	if b[0]&1 == 0 {
		if len(b) < 2 {
			return Malformed
		}
		proto, b = binary.BigEndian.Uint16(b[0:2]), b[2:]
	} else {
		b = b[1:]
	}
	return pppPayload(proto, b, m)
}

func pppPayload(proto uint16, b []byte, m *Meta) Result {
	switch proto {
	case pppIPv4:
		return decodeIPv4(b, m)
	case pppIPv6:
		return decodeIPv6(b, m)
	}
	return NotIP // LCP, IPCP, CHAP, ...
}

// decodePPPoE reads a PPPoE session header (RFC 2516: version and type 1,
// code 0, session id, length) and the PPP protocol after it.
func decodePPPoE(b []byte, m *Meta) Result {
	if len(b) < 8 {
		return Malformed
	}
	if b[0] != 0x11 || b[1] != 0 {
		return NotIP // discovery or another version
	}
	if !m.enter(EncapPPPoE) {
		return TooDeep
	}
	m.Session = binary.BigEndian.Uint16(b[2:4])
	m.Path = mixPath(m.Path, EncapPPPoE, uint32(m.Session))
	n := int(binary.BigEndian.Uint16(b[4:6]))
	proto := binary.BigEndian.Uint16(b[6:8])
	b = b[8:]
	if n >= 2 && n-2 < len(b) {
		b = b[:n-2] // Ethernet padding
	}
	return pppPayload(proto, b, m)
}

// decodeMPLS walks a label stack (at most MaxMPLSLabels) to its bottom and
// reads what it carries: IPv4 or IPv6 by the first nibble, or Ethernet
// after a pseudowire control word (first nibble 0) or without one. Labels
// differ per direction, so they are context, not path.
func decodeMPLS(b []byte, m *Meta) Result {
	if !m.enter(EncapMPLS) {
		return TooDeep
	}
	for i := 0; ; i++ {
		if i == MaxMPLSLabels || len(b) < 4 {
			return Malformed
		}
		e := binary.BigEndian.Uint32(b[0:4])
		m.Label = e >> 12
		b = b[4:]
		if e&0x100 != 0 {
			break
		}
	}
	if len(b) < 1 {
		return Malformed
	}
	switch b[0] >> 4 {
	case 4, 6:
		return decodeIPByVersion(b, m)
	case 0:
		if len(b) < 4 {
			return Malformed
		}
		b = b[4:] // pseudowire control word
	}
	m.depth-- // the Ethernet frame is the same tunnel's payload
	return m.innerEthernet(b, EncapMPLS)
}

// decodeGRE reads a GRE header (version 0; checksum, key and sequence
// number present as its flags say) and what it carries: IPv4, IPv6, MPLS,
// Ethernet (transparent bridging) or ERSPAN.
func decodeGRE(b []byte, m *Meta) Result {
	if len(b) < 4 {
		return Malformed
	}
	flags := binary.BigEndian.Uint16(b[0:2])
	proto := binary.BigEndian.Uint16(b[2:4])
	if flags&7 != 0 {
		return OtherL4 // version 1: PPTP's enhanced GRE
	}
	hl := 4
	if flags&0xc000 != 0 { // checksum or routing present: checksum + offset
		hl += 4
	}
	key := flags&0x2000 != 0
	if key {
		if len(b) < hl+4 {
			return Malformed
		}
		m.Key = binary.BigEndian.Uint32(b[hl : hl+4])
		hl += 4
	}
	seq := flags&0x1000 != 0
	if seq {
		hl += 4
	}
	if len(b) < hl {
		return Malformed
	}
	b = b[hl:]
	m.TunnelSrc, m.TunnelDst = m.Src, m.Dst
	if key {
		m.Path = mixPath(m.Path, EncapGRE, m.Key)
	}
	switch proto {
	case etherTypeIPv4, etherTypeIPv6:
		return m.innerIP(b, EncapGRE)
	case etherTypeTEB:
		return m.innerEthernet(b, EncapGRE)
	case etherTypeMPLS, etherTypeMPLSMulti:
		m.Encap |= EncapGRE
		return decodeMPLS(b, m)
	case etherTypeERSPAN2:
		m.Encap |= EncapGRE
		if !seq { // type I: the mirrored frame follows directly
			return m.innerEthernet(b, EncapERSPAN)
		}
		if len(b) < 8 || b[0]>>4 != 1 {
			return Malformed
		}
		m.Key = uint32(binary.BigEndian.Uint16(b[2:4]) & 0x3ff)
		return m.innerEthernet(b[8:], EncapERSPAN)
	case etherTypeERSPAN3:
		m.Encap |= EncapGRE
		if len(b) < 12 || b[0]>>4 != 2 {
			return Malformed
		}
		m.Key = uint32(binary.BigEndian.Uint16(b[2:4]) & 0x3ff)
		n := 12
		if b[11]&1 != 0 { // O: an 8-byte platform-specific subheader
			n += 8
		}
		if len(b) < n {
			return Malformed
		}
		return m.innerEthernet(b[n:], EncapERSPAN)
	}
	return OtherL4
}

// udpTunnelPort reports whether a UDP port pair is a tunnel's.
// UDPTunnelPort reports whether a UDP datagram's ports are a tunnel's the
// decoder opens when the header is that tunnel's: its flow may be the
// inner one.
func UDPTunnelPort(sp, dp uint16) bool { return udpTunnelPort(sp, dp) }

func udpTunnelPort(sp, dp uint16) bool {
	return sp == portGTPU || dp == portGTPU || dp == portVXLAN || dp == portGeneve || sp == portTeredo || dp == portTeredo
}

// decodeUDPTunnel reads the tunnel a UDP datagram on a tunnel port carries,
// when its header is exactly that tunnel's; otherwise the datagram is an
// ordinary UDP flow (a BitTorrent client may well listen on 4789).
func decodeUDPTunnel(m *Meta) Result {
	// A datagram cut by the snaplen still has its inner frame's lengths.
	p := m.Payload
	sp, dp := m.SrcPort, m.DstPort
	switch {
	case (sp == portGTPU || dp == portGTPU) && len(p) >= 8 && p[0]>>5 == 1 && p[0]&0x10 != 0 && p[1] == 0xff &&
		int(binary.BigEndian.Uint16(p[2:4])) == m.PayloadLen-8:
		m.TEID = binary.BigEndian.Uint32(p[4:8])
		n := 8
		if p[0]&0x07 != 0 { // sequence number, N-PDU number, next extension type
			n += 4
			if len(p) < n {
				return Malformed
			}
			next := p[n-1]
			for i := 0; next != 0; i++ {
				if i == maxGTPExt || len(p) < n+1 || p[n] == 0 || len(p) < n+4*int(p[n]) {
					return Malformed
				}
				n += 4 * int(p[n])
				next = p[n-1]
			}
		}
		return m.innerIP(p[n:], EncapGTPU)
	case dp == portVXLAN && len(p) >= 8 && p[0] == 0x08 && p[1]|p[2]|p[3]|p[7] == 0:
		m.VNI = binary.BigEndian.Uint32(p[4:8]) >> 8
		m.Path = mixPath(m.Path, EncapVXLAN, m.VNI)
		m.TunnelSrc, m.TunnelDst = m.Src, m.Dst
		return m.innerEthernet(p[8:], EncapVXLAN)
	case dp == portGeneve && len(p) >= 8 && p[0]>>6 == 0 && p[7] == 0:
		n := 8 + 4*int(p[0]&0x3f)
		proto := binary.BigEndian.Uint16(p[2:4])
		if len(p) < n || proto != etherTypeTEB && proto != etherTypeIPv4 && proto != etherTypeIPv6 {
			return OK
		}
		m.VNI = binary.BigEndian.Uint32(p[4:8]) >> 8
		m.Path = mixPath(m.Path, EncapGeneve, m.VNI)
		m.TunnelSrc, m.TunnelDst = m.Src, m.Dst
		if proto == etherTypeTEB {
			return m.innerEthernet(p[n:], EncapGeneve)
		}
		return m.innerIP(p[n:], EncapGeneve)
	case sp == portTeredo || dp == portTeredo:
		// Optional authentication (0x0001) and origin indication (0x0000)
		// headers, then an IPv6 packet whose length fills the datagram.
		n := 0
		if len(p) >= 13 && p[0] == 0 && p[1] == 1 {
			n = 13 + int(p[2]) + int(p[3])
		}
		if len(p) >= n+8 && p[n] == 0 && p[n+1] == 0 {
			n += 8
		}
		if len(p) < n+ipv6HeaderLen || p[n]>>4 != 6 || ipv6HeaderLen+int(binary.BigEndian.Uint16(p[n+4:n+6])) != m.PayloadLen-n {
			return OK
		}
		return m.innerIP(p[n:], EncapTeredo)
	}
	return OK
}
