package shard

import (
	"net/netip"

	"github.com/swarmguard/swarmguard/shard/packet"
)

// The tunnel a flow's records name, with the identifier they give: of the
// encapsulations a frame crossed, the one that says most about the
// subscriber, in this order.
var tunnelOrder = [...]struct {
	kind packet.Encap
	id   func(m *packet.Meta) uint32
}{
	{packet.EncapGTPU, func(m *packet.Meta) uint32 { return m.TEID }},
	{packet.EncapVXLAN, func(m *packet.Meta) uint32 { return m.VNI }},
	{packet.EncapGeneve, func(m *packet.Meta) uint32 { return m.VNI }},
	{packet.EncapERSPAN, func(m *packet.Meta) uint32 { return m.Key }},
	{packet.EncapGRE, func(m *packet.Meta) uint32 { return m.Key }},
	{packet.EncapPPPoE, func(m *packet.Meta) uint32 { return uint32(m.Session) }},
	{packet.EncapMPLS, func(m *packet.Meta) uint32 { return m.Label }},
	{packet.EncapIPinIP, func(*packet.Meta) uint32 { return 0 }},
	{packet.EncapTeredo, func(*packet.Meta) uint32 { return 0 }},
	{packet.EncapPPP, func(*packet.Meta) uint32 { return 0 }},
}

// setTunnel keeps in a new flow what its first frame's encapsulation says:
// its innermost VLAN id and its tunnel and the tunnel's identifier. The
// flow's path is in its key already.
func (w *Worker) setTunnel(f *Flow, m *packet.Meta) {
	f.VLAN = m.VLAN
	if m.Encap&ipTunnels != 0 {
		w.outer.put(f.Key.Hash(), m)
	}
	if m.Encap&^(packet.EncapVLAN|packet.EncapQinQ) == 0 {
		return
	}
	for i, t := range tunnelOrder {
		if m.Encap&t.kind != 0 {
			f.Tunnel, f.TunnelID = uint8(i+1), t.id(m)
			return
		}
	}
}

// tunnelName is the name of a flow's tunnel ("" for none).
func tunnelName(f *Flow) string {
	if f.Tunnel == 0 || int(f.Tunnel) > len(tunnelOrder) {
		return ""
	}
	return tunnelOrder[f.Tunnel-1].kind.String()
}

// Outer is where a tunnelled flow's first frame came from: the innermost IP
// tunnel's endpoints and the outermost VLAN id.
type Outer struct {
	Src, Dst  netip.Addr
	OuterVLAN uint16
}

// outerTable keeps the Outer of tunnelled flows beside the flow table,
// whose 128-byte entries have no room for two more addresses: a fixed
// open-addressed array keyed by the flow key's hash, filled when a flow
// starts, never grown (a colliding flow overwrites the older entry, which
// then shows no endpoints). Nothing on the packet path allocates.
type outerTable struct {
	e    []outerEntry
	mask uint64
}

type outerEntry struct {
	hash      uint64
	src, dst  packet.Addr16
	outerVLAN uint16
}

func newOuterTable(flows int) *outerTable {
	n := 1024
	for n < flows/4 {
		n <<= 1
	}
	return &outerTable{e: make([]outerEntry, n), mask: uint64(n - 1)}
}

// put notes the tunnel endpoints of the flow with key hash h.
func (t *outerTable) put(h uint64, m *packet.Meta) {
	t.e[h&t.mask] = outerEntry{hash: h | 1, src: m.TunnelSrc, dst: m.TunnelDst, outerVLAN: m.OuterVLAN}
}

// get returns the endpoints noted for key hash h.
func (t *outerTable) get(h uint64) (Outer, bool) {
	e := &t.e[h&t.mask]
	if e.hash != h|1 {
		return Outer{}, false
	}
	return Outer{Src: e.src.Netip(), Dst: e.dst.Netip(), OuterVLAN: e.outerVLAN}, true
}

// ipTunnels are the encapsulations with outer IP endpoints.
const ipTunnels = packet.EncapGRE | packet.EncapERSPAN | packet.EncapGTPU | packet.EncapVXLAN | packet.EncapGeneve |
	packet.EncapIPinIP | packet.EncapTeredo

// OuterOf returns the tunnel endpoints of a flow this worker owns, when its
// first frame came through an IP tunnel. Call it from the worker's
// goroutine (Leave and Decided run there).
func (w *Worker) OuterOf(f *Flow) (Outer, bool) {
	if f.Tunnel == 0 {
		return Outer{}, false
	}
	return w.outer.get(f.Key.Hash())
}
