package hostmerge

import (
	"encoding/binary"
	"net/netip"
)

// Host identifies a host: its address and, for an address that different
// subscribers may each have behind their own path (private, shared CGNAT
// space, unique-local and link-local addresses), the subscriber path it
// was seen on (packet.Meta.Path: VLAN tags, PPPoE session, VNI, GRE key).
// Two subscribers with the same private address in two VNIs are two hosts;
// a public server they both reach is one.
type Host struct {
	Addr netip.Addr
	Path uint64 // 24 bits used; a full word leaves no padding, so maps hash the key in one run
}

// HostOf is the host with address a seen on path.
func HostOf(a netip.Addr, path uint32) Host {
	if path != 0 && reusable(a) {
		return Host{Addr: a, Path: uint64(path)}
	}
	return Host{Addr: a}
}

// cgnat is RFC 6598's shared address space.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// reusable reports whether a is an address many networks reuse.
func reusable(a netip.Addr) bool {
	return a.IsPrivate() || a.IsLinkLocalUnicast() || cgnat.Contains(a.Unmap())
}

// hostHash spreads hosts over shards and slots (addrHash, with the path).
func hostHash(h Host) uint64 {
	x := addrHash(h.Addr)
	if h.Path != 0 {
		x ^= (h.Path + 1) * 0xd6e8feb86659fd93
		x ^= x >> 31
	}
	return x
}

func addrHash(a netip.Addr) uint64 {
	// Big-endian words put an address's last byte (what differs within a
	// subnet) in the low bits, which a multiply spreads over all the
	// product's bits; the fold brings the high bits down for the shard
	// and slot indexes, which use the low ones. TestAddrHashSpread.
	b := a.As16()
	h := (binary.BigEndian.Uint64(b[8:16]) ^ binary.BigEndian.Uint64(b[0:8])*0x9e3779b97f4a7c15) * 0xc2b2ae3d27d4eb4f
	return h ^ h>>29
}
