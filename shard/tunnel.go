package shard

import "github.com/swarmguard/swarmguard/shard/packet"

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
func setTunnel(f *Flow, m *packet.Meta) {
	f.VLAN = m.VLAN
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
