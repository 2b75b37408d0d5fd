package shard

import (
	"cmp"
	"math/bits"
	"net/netip"
	"unsafe"

	"github.com/swarmguard/swarmguard/classifier"

	"github.com/swarmguard/swarmguard/shard/packet"
)

// Key identifies a flow independently of direction: the endpoint that sorts
// lower (address bytes, then port) is always Lo. Addresses are kept as 16
// bytes (IPv4 as IPv4-mapped IPv6), so the key is a comparable value of fixed
// size that hashes and compares without reflection. The flow is the
// innermost 5-tuple of an encapsulated frame; its subscriber path
// (packet.Meta.Path: VLAN tags, PPPoE session, VNI, GRE key; 24 bits) is
// part of the key, split over PathLo and PathHi around Proto so that the
// key keeps its 40 bytes and its layout.
type Key struct {
	LoAddr, HiAddr packet.Addr16
	LoPort, HiPort uint16
	PathLo         uint16 // the path's low 16 bits (a single VLAN id is all of it)
	Proto          uint8
	PathHi         uint8 // the path's high 8 bits
}

// Path is the key's subscriber path (24 bits).
func (k *Key) Path() uint32 { return uint32(k.PathLo) | uint32(k.PathHi)<<16 }

// Tail packs the key's last eight bytes as they lie in memory: ports, path
// and protocol in one word, so that Equal and Hash read it with one load.
func Tail(loPort, hiPort uint16, path uint32, proto uint8) uint64 {
	return uint64(loPort) | uint64(hiPort)<<16 | uint64(path&0xffff)<<32 | uint64(proto)<<48 | uint64(path>>16&0xff)<<56
}

// tail is Tail(k.LoPort, k.HiPort, k.Path(), k.Proto) read as one word. The
// fields are little-endian in memory on every platform Go's unsafe layout
// gives this order for, which a test checks against Tail.
func (k *Key) tail() uint64 { return *(*uint64)(unsafe.Pointer(&k.LoPort)) }

// Set makes k the symmetric key of m in place (no 40-byte copy on the
// packet path) and returns m's direction: 0 when m travels from Lo to Hi,
// 1 when it travels from Hi to Lo.
func (k *Key) Set(m *packet.Meta) (dir uint8) {
	dir = Dir(m.Src[0], m.Src[1], m.Dst[0], m.Dst[1], m.SrcPort, m.DstPort)
	if dir == 0 {
		k.LoAddr, k.HiAddr, k.LoPort, k.HiPort = m.Src, m.Dst, m.SrcPort, m.DstPort
	} else {
		k.LoAddr, k.HiAddr, k.LoPort, k.HiPort = m.Dst, m.Src, m.DstPort, m.SrcPort
	}
	k.PathLo, k.PathHi = uint16(m.Path), uint8(m.Path>>16)
	k.Proto = m.Proto
	return dir
}

// Compare orders keys: addresses, ports, path, protocol.
func (k *Key) Compare(o *Key) int {
	switch {
	case k.LoAddr[0] != o.LoAddr[0]:
		return cmp.Compare(k.LoAddr[0], o.LoAddr[0])
	case k.LoAddr[1] != o.LoAddr[1]:
		return cmp.Compare(k.LoAddr[1], o.LoAddr[1])
	case k.HiAddr[0] != o.HiAddr[0]:
		return cmp.Compare(k.HiAddr[0], o.HiAddr[0])
	case k.HiAddr[1] != o.HiAddr[1]:
		return cmp.Compare(k.HiAddr[1], o.HiAddr[1])
	case k.LoPort != o.LoPort:
		return cmp.Compare(k.LoPort, o.LoPort)
	case k.HiPort != o.HiPort:
		return cmp.Compare(k.HiPort, o.HiPort)
	case k.Path() != o.Path():
		return cmp.Compare(k.Path(), o.Path())
	}
	return cmp.Compare(k.Proto, o.Proto)
}

// Equal compares two keys word by word (cheaper than a memequal call).
func (k *Key) Equal(o *Key) bool {
	return k.hasWords(o.LoAddr[0], o.LoAddr[1], o.HiAddr[0], o.HiAddr[1], o.tail())
}

// hasWords reports whether k is the key with these words (tail as Tail
// packs it). The low address words go first: they are the ones that differ
// (IPv4 keys have zero high words).
func (k *Key) hasWords(lo0, lo1, hi0, hi1, tail uint64) bool {
	return k.LoAddr[1] == lo1 && k.HiAddr[1] == hi1 && k.tail() == tail && k.LoAddr[0] == lo0 && k.HiAddr[0] == hi0
}

// Dir is the direction of a packet from source (address words s0, s1;
// port sp) to destination (d0, d1; dp) in the flow key's symmetric order:
// 0 when the source sorts lower (address words, then port) and is Lo, 1
// otherwise; a tie goes to 1. It is the one definition of the order: Set,
// the fast path and the kernel's key (built from a Key by dataplane/live,
// checked against the XDP program by its kernel-key test) follow it. Flags
// and selects, not branches: a packet's direction in a mixed stream is a
// coin toss for the branch predictor. With constant zero high words (IPv4)
// the compiler drops half the work.
func Dir(s0, s1, d0, d1 uint64, sp, dp uint16) uint8 {
	var gt0, eq0, gt1, eq1, ge uint8
	if s0 > d0 {
		gt0 = 1
	}
	if s0 == d0 {
		eq0 = 1
	}
	if s1 > d1 {
		gt1 = 1
	}
	if s1 == d1 {
		eq1 = 1
	}
	if sp >= dp {
		ge = 1
	}
	return gt0 | eq0&(gt1|eq1&ge)
}

// Endpoint returns side 0 (Lo) or 1 (Hi) of the key.
func (k *Key) Endpoint(side uint8) netip.AddrPort {
	if side == 0 {
		return netip.AddrPortFrom(k.LoAddr.Netip(), k.LoPort)
	}
	return netip.AddrPortFrom(k.HiAddr.Netip(), k.HiPort)
}

// Hash multiplies the key's five words by independent odd constants, so the
// products run in parallel instead of as one serial chain, and folds them,
// so that every key bit reaches the high bits the table uses for the bucket
// index and the tag. The key is direction-free: the hash is symmetric by construction.
func (k *Key) Hash() uint64 {
	return HashWords(k.LoAddr[0], k.LoAddr[1], k.HiAddr[0], k.HiAddr[1], k.tail())
}

// HashWords is Hash of the key with these words (tail from Tail). It lets a
// decoder hash straight from header fields; with constant zero high words
// (IPv4) the compiler drops their multiplies.
func HashWords(lo0, lo1, hi0, hi1, tail uint64) uint64 {
	a := lo0 * 0x9e3779b97f4a7c15
	b := lo1 * 0xc2b2ae3d27d4eb4f
	c := hi0 * 0x165667b19e3779f9
	d := hi1 * 0xd6e8feb86659fd93
	e := tail * 0x27d4eb2f165667c5
	h := bits.RotateLeft64(a, 17) ^ b ^ bits.RotateLeft64(c, 31) ^ d ^ bits.RotateLeft64(e, 43)
	// One multiply-fold finishes it: the products already carry every input
	// bit upwards, and the table uses the high bits (index and tag).
	return (h ^ h>>32) * 0x9e3779b97f4a7c15
}

// Flow is one entry of the table: the key, then the classifier's state of
// the flow (streaming statistics, evidence, label). 128 bytes, no packet
// history.
type Flow struct {
	Key Key // first: it is 8-byte aligned and compared on every lookup
	classifier.FlowState
}
