package accuracy

import (
	"fmt"
	"io"
	"net/netip"
	"sort"

	"github.com/swarmguard/swarmguard/shard"
)

// Truth says what a flow of one capture is: "bittorrent", "other", or ""
// when nobody knows (the flow is not scored).
type Truth func(pcap, proto string, a, b netip.AddrPort, vlan uint16) string

// Tally is one row of the accuracy report: flows, hosts and payload bytes,
// BitTorrent (recall) and the rest (false positives).
type Tally struct {
	Name                       string
	BTFlows, BTFlowsP2P        int // BitTorrent flows with payload, and those labelled p2p
	OtherFlows, OtherFlowsP2P  int
	BTHosts, BTHostsP2P        int // hosts in a BitTorrent flow with payload
	OtherHosts, OtherHostsP2P  int
	BTBytes, BTBytesP2P        uint64
	OtherBytes, OtherBytesP2P  uint64
	PeerFlows4, PeerFlows4P2P  int // BitTorrent flows with >= 4 payload packets
	btHosts, otherHosts, p2pHs map[netip.Addr]bool
}

func newTally(name string) *Tally {
	return &Tally{Name: name, btHosts: map[netip.Addr]bool{}, otherHosts: map[netip.Addr]bool{}, p2pHs: map[netip.Addr]bool{}}
}

// addFlow counts one flow record whose truth is known.
func (t *Tally) addFlow(truth string, f *shard.FlowRecord, a, b netip.Addr) {
	p2p := f.Label == "p2p"
	switch truth {
	case "bittorrent":
		if f.PayloadPackets == 0 {
			return
		}
		t.BTFlows++
		t.BTBytes += f.Bytes
		if f.PayloadPackets >= 4 {
			t.PeerFlows4++
		}
		if p2p {
			t.BTFlowsP2P++
			t.BTBytesP2P += f.Bytes
			if f.PayloadPackets >= 4 {
				t.PeerFlows4P2P++
			}
		}
		t.hosts(t.btHosts, a, b)
	case "other":
		t.OtherFlows++
		t.OtherBytes += f.Bytes
		if p2p {
			t.OtherFlowsP2P++
			t.OtherBytesP2P += f.Bytes
		}
		t.hosts(t.otherHosts, a, b)
	}
}

// hosts adds a and b to set, leaving out group addresses (LSD's multicast
// group is a destination, not a host).
func (t *Tally) hosts(set map[netip.Addr]bool, a, b netip.Addr) {
	for _, h := range []netip.Addr{a, b} {
		if !h.IsMulticast() && !h.IsUnspecified() {
			set[h] = true
		}
	}
}

// addHost counts a host record of the same capture.
func (t *Tally) addHost(a netip.Addr, label string) {
	if label == "p2p" {
		t.p2pHs[a] = true
	}
}

// close turns the host sets into counts: a host is BitTorrent if it took
// part in a BitTorrent flow with payload, else other if it took part in a
// scored flow.
func (t *Tally) close() {
	for h := range t.btHosts {
		t.BTHosts++
		if t.p2pHs[h] {
			t.BTHostsP2P++
		}
	}
	for h := range t.otherHosts {
		if t.btHosts[h] {
			continue
		}
		t.OtherHosts++
		if t.p2pHs[h] {
			t.OtherHostsP2P++
		}
	}
}

// Add folds o's counts into t (hosts of different captures are different hosts).
func (t *Tally) Add(o *Tally) {
	t.BTFlows += o.BTFlows
	t.BTFlowsP2P += o.BTFlowsP2P
	t.OtherFlows += o.OtherFlows
	t.OtherFlowsP2P += o.OtherFlowsP2P
	t.BTHosts += o.BTHosts
	t.BTHostsP2P += o.BTHostsP2P
	t.OtherHosts += o.OtherHosts
	t.OtherHostsP2P += o.OtherHostsP2P
	t.BTBytes += o.BTBytes
	t.BTBytesP2P += o.BTBytesP2P
	t.OtherBytes += o.OtherBytes
	t.OtherBytesP2P += o.OtherBytesP2P
	t.PeerFlows4 += o.PeerFlows4
	t.PeerFlows4P2P += o.PeerFlows4P2P
}

// BTByteShare is the share of BitTorrent payload bytes in flows labelled p2p.
func (t *Tally) BTByteShare() float64 { return share(t.BTBytesP2P, t.BTBytes) }

func share(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// TallyResult scores one capture's records against truth. client, if set,
// names the BitTorrent client a host runs; the flows and hosts of each
// client are tallied in byClient too (a flow counts for each client at its ends).
func TallyResult(r *shard.Result, truth Truth, client func(netip.Addr) string, byClient map[string]*Tally) *Tally {
	t := newTally(r.Pcap)
	clientOf := map[string]*Tally{}
	get := func(name string) *Tally {
		if c := clientOf[name]; c != nil {
			return c
		}
		c := newTally(name)
		clientOf[name] = c
		return c
	}
	for i := range r.Flows {
		f := &r.Flows[i]
		a, errA := netip.ParseAddrPort(f.A)
		b, errB := netip.ParseAddrPort(f.B)
		if errA != nil || errB != nil {
			continue
		}
		tr := truth(r.Pcap, f.Proto, a, b, f.VLAN)
		if tr == "" {
			continue
		}
		t.addFlow(tr, f, a.Addr(), b.Addr())
		if client == nil || tr != "bittorrent" {
			continue
		}
		seen := map[string]bool{}
		for _, e := range []netip.Addr{a.Addr(), b.Addr()} {
			if name := client(e); name != "" && !seen[name] {
				seen[name] = true
				get(name).addFlow(tr, f, a.Addr(), b.Addr())
			}
		}
	}
	for _, h := range r.Hosts {
		a, err := netip.ParseAddr(h.Host)
		if err != nil {
			continue
		}
		t.addHost(a, h.Label)
		if client != nil {
			if name := client(a); name != "" {
				get(name).addHost(a, h.Label)
			}
		}
	}
	t.close()
	for name, c := range clientOf {
		// A client's hosts are those running it, not their peers.
		c.BTHosts, c.BTHostsP2P = 0, 0
		for h := range c.btHosts {
			if client(h) == name {
				c.BTHosts++
				if c.p2pHs[h] {
					c.BTHostsP2P++
				}
			}
		}
		if byClient[name] == nil {
			byClient[name] = newTally(name)
		}
		byClient[name].Add(c)
	}
	return t
}

// WriteMarkdown writes one table: a row per tally, with flows, hosts and
// bytes, BitTorrent recall and false positives.
func WriteMarkdown(w io.Writer, rows []*Tally) {
	fmt.Fprintln(w, "| capture | BT flows p2p | BT flows ≥4 pkts p2p | BT hosts p2p | BT bytes in p2p | normal flows p2p | normal hosts p2p | normal bytes in p2p |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, t := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %d / %d | %d / %d | %s |\n", t.Name,
			frac(t.BTFlowsP2P, t.BTFlows), frac(t.PeerFlows4P2P, t.PeerFlows4), frac(t.BTHostsP2P, t.BTHosts),
			pct(t.BTBytesP2P, t.BTBytes), t.OtherFlowsP2P, t.OtherFlows, t.OtherHostsP2P, t.OtherHosts, pct(t.OtherBytesP2P, t.OtherBytes))
	}
}

func frac(a, b int) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%d / %d", a, b)
}

func pct(a, b uint64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f %% of %s", 100*share(a, b), size(b))
}

func size(b uint64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

// SortedClients returns the per-client tallies by name.
func SortedClients(m map[string]*Tally) []*Tally {
	out := make([]*Tally, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LabelTruth is the Truth of a labels file: its label for the flow, "" for
// flows it does not label, name-only BitTorrent labels and nDPI's unknowns.
func LabelTruth(ls *Labels) Truth {
	return func(pcap, proto string, a, b netip.AddrPort, vlan uint16) string {
		as, bs := a.String(), b.String()
		if bs < as {
			as, bs = bs, as
		}
		l, ok := ls.ByKey[Key{pcap, proto, as, bs, vlan}]
		if !ok || l.NameOnly() || l.Label == "unknown" {
			return ""
		}
		return l.Label
	}
}
