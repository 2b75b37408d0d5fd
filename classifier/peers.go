package classifier

import (
	"encoding/binary"
	"net/netip"
)

// MaxPeers bounds the peers taken from one packet; the rest are counted.
const MaxPeers = 64

// Peers collects the peer addresses one packet announces (tracker answers,
// DHT values, PEX). It is scratch space owned by a worker and reused.
type Peers struct {
	Addr    [MaxPeers]netip.AddrPort
	N       int
	Dropped int
}

// Reset empties p.
func (p *Peers) Reset() { p.N, p.Dropped = 0, 0 }

func (p *Peers) add(ap netip.AddrPort) {
	if !ap.Addr().IsValid() || ap.Port() == 0 {
		return
	}
	if p.N == MaxPeers {
		p.Dropped++
		return
	}
	p.Addr[p.N] = ap
	p.N++
}

// addCompact adds BEP 23 compact peers: 6 bytes each (IPv4+port), or 18
// bytes each (IPv6+port) when v6. A length that is not a multiple is refused.
func (p *Peers) addCompact(b []byte, v6 bool) bool {
	size := 6
	if v6 {
		size = 18
	}
	if p == nil || len(b)%size != 0 {
		return len(b)%size == 0
	}
	for ; len(b) >= size; b = b[size:] {
		var a netip.Addr
		if v6 {
			a = netip.AddrFrom16([16]byte(b[:16]))
		} else {
			a = netip.AddrFrom4([4]byte(b[:4]))
		}
		p.add(netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[size-2:size])))
	}
	return true
}
