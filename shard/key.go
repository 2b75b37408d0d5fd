package shard

import (
	"net/netip"

	"github.com/swarmguard/swarmguard/dataplane/packet"
)

// Key identifies a flow independently of direction: the endpoint that sorts
// lower (address bytes, then port) is always Lo. Addresses are kept as 16
// bytes (IPv4 as IPv4-mapped IPv6), so the key is a comparable value of fixed
// size that hashes and compares without reflection.
type Key struct {
	LoAddr, HiAddr [16]byte
	LoPort, HiPort uint16
	VLAN           uint16
	Proto          uint8
	_              uint8
}

// MakeKey builds the symmetric key of m. dir is 0 when m travels from Lo to Hi
// and 1 when it travels from Hi to Lo.
func MakeKey(m *packet.Meta) (k Key, dir uint8) {
	s, d := m.Src.As16(), m.Dst.As16()
	sp, dp := m.SrcPort, m.DstPort
	if less(s, sp, d, dp) {
		k.LoAddr, k.HiAddr, k.LoPort, k.HiPort = s, d, sp, dp
	} else {
		k.LoAddr, k.HiAddr, k.LoPort, k.HiPort = d, s, dp, sp
		dir = 1
	}
	k.VLAN = m.VLAN
	k.Proto = m.Proto
	return k, dir
}

func less(a [16]byte, ap uint16, b [16]byte, bp uint16) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return ap < bp
}

// Endpoint returns side 0 (Lo) or 1 (Hi) of the key.
func (k *Key) Endpoint(side uint8) netip.AddrPort {
	if side == 0 {
		return netip.AddrPortFrom(netip.AddrFrom16(k.LoAddr).Unmap(), k.LoPort)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(k.HiAddr).Unmap(), k.HiPort)
}

// Hash mixes the key into 64 bits with the murmur3 finaliser per word. The
// key is already direction-free, so the hash is symmetric by construction.
func (k *Key) Hash() uint64 {
	h := uint64(0x9e3779b97f4a7c15)
	h = mix(h ^ le64(k.LoAddr[0:8]))
	h = mix(h ^ le64(k.LoAddr[8:16]))
	h = mix(h ^ le64(k.HiAddr[0:8]))
	h = mix(h ^ le64(k.HiAddr[8:16]))
	h = mix(h ^ (uint64(k.LoPort) | uint64(k.HiPort)<<16 | uint64(k.VLAN)<<32 | uint64(k.Proto)<<48))
	return h
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
