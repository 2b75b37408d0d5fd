package shard

import (
	"encoding/binary"
	"math/bits"
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
	a0, b0 := binary.BigEndian.Uint64(a[0:8]), binary.BigEndian.Uint64(b[0:8])
	if a0 != b0 {
		return a0 < b0
	}
	a1, b1 := binary.BigEndian.Uint64(a[8:16]), binary.BigEndian.Uint64(b[8:16])
	if a1 != b1 {
		return a1 < b1
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

// Hash folds the key's five words with multiply-rotate steps and ends with
// the murmur3 finaliser, so every key bit reaches the bucket index and the
// tag. The key is already direction-free: the hash is symmetric by construction.
func (k *Key) Hash() uint64 {
	const p1, p2 = 0x9e3779b97f4a7c15, 0xc2b2ae3d27d4eb4f
	h := uint64(p1)
	h = bits.RotateLeft64((h^binary.LittleEndian.Uint64(k.LoAddr[0:8]))*p2, 31)
	h = bits.RotateLeft64((h^binary.LittleEndian.Uint64(k.LoAddr[8:16]))*p2, 31)
	h = bits.RotateLeft64((h^binary.LittleEndian.Uint64(k.HiAddr[0:8]))*p2, 31)
	h = bits.RotateLeft64((h^binary.LittleEndian.Uint64(k.HiAddr[8:16]))*p2, 31)
	h ^= uint64(k.LoPort) | uint64(k.HiPort)<<16 | uint64(k.VLAN)<<32 | uint64(k.Proto)<<48
	return mix(h * p1)
}

func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
