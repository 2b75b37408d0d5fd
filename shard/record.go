package shard

import (
	"math"
	"sort"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/hostmerge"
)

// FlowRecord is the decision record of one flow (JSON lines, README).
type FlowRecord struct {
	Type  string `json:"type"`
	Pcap  string `json:"pcap,omitempty"`
	Proto string `json:"proto"`
	A     string `json:"a"`
	B     string `json:"b"`
	VLAN  uint16 `json:"vlan,omitempty"` // innermost VLAN id
	// Path is the subscriber path of the flow key when it is more than the
	// VLAN id (two tags, a PPPoE session, VNI or GRE key folded in).
	Path     uint32 `json:"path,omitempty"`
	Tunnel   string `json:"tunnel,omitempty"`    // pppoe, mpls, gre, erspan, gtpu, vxlan, geneve, ipip, teredo, ppp
	TunnelID uint32 `json:"tunnel_id,omitempty"` // PPPoE session, MPLS label, GRE key, ERSPAN session, TEID, VNI
	// TunnelSrc and TunnelDst are the innermost IP tunnel's endpoints as the
	// flow's first frame had them; OuterVLAN the outermost VLAN id.
	TunnelSrc      string  `json:"tunnel_src,omitempty"`
	TunnelDst      string  `json:"tunnel_dst,omitempty"`
	OuterVLAN      uint16  `json:"outer_vlan,omitempty"`
	Label          string  `json:"label"`
	P              float64 `json:"p"`
	Packets        uint32  `json:"packets"`
	PayloadPackets uint32  `json:"payload_packets"`
	Bytes          uint64  `json:"bytes"` // L4 payload bytes, both directions
	DecidedAt      uint16  `json:"decided_at_packet"`
	// Redecided says a final normal label was overturned when a host turned
	// p2p; the reasons are those of the new decision.
	Redecided bool                `json:"redecided,omitempty"`
	Reasons   []classifier.Reason `json:"reasons"`
	first     int64               // first packet time: orders records of one flow key
	key       Key                 // orders records without comparing strings
}

// HostRecord is the record of one host.
type HostRecord struct {
	Type    string              `json:"type"`
	Pcap    string              `json:"pcap,omitempty"`
	Host    string              `json:"host"`
	Path    uint32              `json:"path,omitempty"` // the subscriber path of a private address (hostmerge.Host)
	Label   string              `json:"label"`
	P       float64             `json:"p"`
	Peers   uint32              `json:"peers"`
	Ports   uint32              `json:"ports"`
	Reasons []classifier.Reason `json:"reasons"`
}

// NewFlowRecord builds f's record. It allocates: records are made once per
// flow, off the packet path.
func NewFlowRecord(pcap string, f *Flow, m *classifier.Model, h *classifier.HostFeatures, reasons bool) FlowRecord {
	a, b := f.Key.Endpoint(0).String(), f.Key.Endpoint(1).String()
	if b < a {
		a, b = b, a
	}
	proto := "udp"
	if f.Key.Proto == 6 {
		proto = "tcp"
	}
	r := FlowRecord{
		Type: "flow", Pcap: pcap, Proto: proto, A: a, B: b, VLAN: f.VLAN,
		Tunnel: tunnelName(f), TunnelID: f.TunnelID,
		Label: f.Label.String(), P: round3(f.Prob()),
		Packets: f.Packets(), PayloadPackets: f.Payloads(), Bytes: f.Bytes[0] + f.Bytes[1], DecidedAt: f.DecidedAt,
		Redecided: f.More&classifier.MoreRedecided != 0,
		first:     f.First, key: f.Key,
	}
	if p := f.Key.Path(); p != uint32(f.VLAN) {
		r.Path = p
	}
	if reasons {
		r.Reasons = m.Reasons(&f.FlowState, h)
	}
	return r
}

// SetOuter adds a tunnelled flow's endpoints to its record.
func (r *FlowRecord) SetOuter(o Outer) {
	if o.Src.IsValid() && !o.Src.IsUnspecified() {
		r.TunnelSrc, r.TunnelDst = o.Src.String(), o.Dst.String()
	}
	r.OuterVLAN = o.OuterVLAN
}

// NewHostRecord builds the record of host h from its snapshot view.
func NewHostRecord(pcap string, h hostmerge.Host, v *hostmerge.View, m *classifier.Model, reasons bool) HostRecord {
	a := h.Addr
	if !reasons {
		return HostRecord{Type: "host", Pcap: pcap, Host: a.String(), Path: uint32(h.Path), Label: v.Label.String(), P: round3(float64(v.P)), Peers: v.Peers, Ports: v.Ports}
	}
	var rs []classifier.Reason
	for i, x := range v.X {
		c := m.HostWeights[i] * float64(x)
		if x == 0 || math.Abs(c) < 0.01 {
			continue
		}
		rs = append(rs, classifier.Reason{Feature: classifier.FeatureName(classifier.FirstHostFeature + i), Value: round3(float64(x)), Contribution: round3(c)})
	}
	if v.P2P > 0 {
		x := math.Log1p(v.P2P)
		rs = append(rs, classifier.Reason{Feature: "p2p_flows", Value: round3(v.P2P), Contribution: round3(m.HostP2PWeight * x)})
	}
	sort.SliceStable(rs, func(i, j int) bool { return math.Abs(rs[i].Contribution) > math.Abs(rs[j].Contribution) })
	if rs == nil {
		rs = []classifier.Reason{}
	}
	return HostRecord{Type: "host", Pcap: pcap, Host: a.String(), Path: uint32(h.Path), Label: v.Label.String(), P: round3(float64(v.P)), Peers: v.Peers, Ports: v.Ports, Reasons: rs}
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
