package hostmerge

import (
	"math"
	"math/bits"
	"net/netip"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/hostmerge/cowmap"
)

// View is what the snapshot says about one host.
type View struct {
	classifier.HostFeatures
	Label classifier.Label
	P     float32
	Peers uint32 // distinct remote IPs of outbound flows, medium window
	Ports uint32 // distinct remote ports of outbound flows, medium window
	Flows float64
	P2P   float64 // flows labelled p2p, long window (decayed)
	// Unanswered counts the host's TCP flows whose SYN got no answer when
	// they left the table (medium window): scan evidence.
	Unanswered float64
	key        hostKey // whose view it is (index)
}

// Snapshot is what workers read of the hosts: the turns, predictions and
// reputed peers as of one merge, and every host's newest view. Workers
// hold one for a tick and never write to it. Host views are not copied per
// snapshot: each is immutable once published, and a host's next one
// replaces it in place (index), so a lookup may answer a view newer than
// the snapshot's generation; offline, merges run between batches and the
// records stay the same for any number of workers.
type Snapshot struct {
	Time  int64
	Gen   uint64 // merges before this snapshot; 0 for the empty first one
	turns []Turn
	hosts *index // shared with the merger and every snapshot
	pred  cowmap.Map[predKey, int64]
	rep   cowmap.Map[netip.Addr, int64] // reputed peers (Merger.AddReputation)
	zero  View                          // what HostView answers for a host never seen
}

// Host returns the view of a, or the zero view for a host never seen.
func (s *Snapshot) Host(a Host) View { return *s.HostView(a) }

// HostView is Host without the copy, for the packet path. The view is
// immutable (a newer one replaces it, it never changes): read it, never
// write it.
func (s *Snapshot) HostView(a Host) *View {
	if v := s.hosts.view(hostHash(a), a); v != nil {
		return v
	}
	return &s.zero
}

// Predicted reports whether a discovery answer announced peer to host and
// the announcement is still within its TTL at time now.
func (s *Snapshot) Predicted(host Host, peer netip.AddrPort, now int64) bool {
	k := predKey{host: host, peer: peer}
	if exp, ok := s.pred.Get(predHash(k), k); ok && exp > now {
		return true
	}
	// A peer another box proved, for any host and port.
	if s.rep.Len() > 0 {
		a := peer.Addr().Unmap()
		exp, ok := s.rep.Get(addrHash(a), a)
		return ok && exp > now
	}
	return false
}

// predHash mixes a prediction's host and peer.
func predHash(k predKey) uint64 {
	x := hostHash(k.host) ^ (addrHash(k.peer.Addr())+uint64(k.peer.Port()))*0x9e3779b97f4a7c15
	return x ^ x>>32
}

// TurnedSince calls fn for every host that turned p2p after generation gen
// (within the last 64 generations).
func (s *Snapshot) TurnedSince(gen uint64, fn func(h Host)) {
	for _, t := range s.turns {
		if t.Gen > gen {
			fn(t.Host)
		}
	}
}

// Range calls fn for every host with its newest view, to read. Exact
// between merges (a replay's end); beside a running merge a host may be
// seen twice or missed.
func (s *Snapshot) Range(fn func(h Host, v *View)) { s.hosts.rangeViews(fn) }

// estEvery is the most often a host's distinct counts are re-estimated.
const estEvery = int64(time.Second)

// Thresholds of the host features and of the scan rule.
const (
	pprMinPeers  = 4  // below this many peers the port/peer ratio means nothing
	scanMinPeers = 16 // a scan touches at least this many targets...
	scanMinFail  = 0.5
)

func logScale(x, full float64) float32 {
	return float32(min(1, math.Log1p(max(0, x))/math.Log1p(full)))
}

// countScale is logScale of whole counts from 0 to full, tabled: a view
// scales four counts, and their log1p was a third of deriving one.
type countScale []float32

func newCountScale(full int) countScale {
	t := make(countScale, full+1)
	for n := range t {
		t[n] = logScale(float64(n), float64(full))
	}
	return t
}

// of is logScale(n, full).
func (t countScale) of(n int) float32 {
	return t[max(0, min(n, len(t)-1))]
}

// The scales of the counted host features (never written after init).
var (
	fanoutScale = newCountScale(256)
	peersScale  = newCountScale(16)
	discScale   = newCountScale(8)
)

// view computes a host's features, score and label (with hysteresis).
func (m *Merger) view(h *host) View {
	mid, long, short := &h.win[1], &h.win[2], &h.win[0]
	if h.stale && (h.last-h.estAt >= estEvery || h.estAt == 0) {
		// HyperLogLog estimates read ~1k registers each: refreshed after a
		// change, at most once a second per host.
		h.peers, h.nports = uint32(h.ips.count()), uint32(h.ports.count())
		h.stale, h.estAt = false, h.last
	}
	peers, ports := float64(h.peers), float64(h.nports)
	var v View
	v.Peers, v.Ports = uint32(peers), uint32(ports)
	v.Flows = long.newFlows + long.inbound
	v.P2P = long.p2pFlows
	v.Unanswered = mid.unanswered
	x := &v.X
	const o = classifier.FirstHostFeature
	x[classifier.FHostFanout-o] = fanoutScale.of(int(v.Peers))
	ppr := 0.0
	if peers >= pprMinPeers {
		ppr = ports / peers
		x[classifier.FHostPPR-o] = float32(max(0, 1-math.Abs(math.Log(max(ppr, 1e-3)))))
	}
	x[classifier.FHostBTPeers-o] = peersScale.of(popcount(&h.btPeers))
	// Peers beyond the first: a flow's own MSE exchange makes its host one
	// MSE peer, which must not count as context for that same flow.
	x[classifier.FHostMSEPeers-o] = peersScale.of(popcount(&h.msePeers) - 1)
	x[classifier.FHostDiscovery-o] = discScale.of(popcount(&h.discPeers))
	overlap := 0
	for i := range h.tcpPeers {
		overlap += bits.OnesCount64(h.tcpPeers[i] & h.udpPeers[i])
	}
	x[classifier.FHostTCPUDP-o] = float32(min(1, float64(overlap)/4))
	x[classifier.FHostNewFlows-o] = logScale(float64(short.newFlows), 100)
	up, down := float64(long.bytesUp), float64(long.bytesDown)
	x[classifier.FHostSymmetry-o] = float32(math.Min(up, down) / (math.Max(up, down) + 1))
	if m.cfg.Model == nil {
		return v
	}
	md := m.cfg.Model
	v.Score = md.HostScore(&v.X)
	s := md.HostBias + md.HostP2PWeight*math.Log1p(float64(long.p2pFlows))
	for i, xi := range v.X {
		s += md.HostWeights[i] * float64(xi)
	}
	p := 1 / (1 + math.Exp(-s))
	v.P = float32(p)
	// Hysteresis: a p2p host stays p2p until its probability falls to TLow.
	// p2p needs flow-level evidence that a spoofed packet cannot give: a p2p
	// flow the other side answered.
	switch {
	case p >= md.THigh && long.confirmed >= 0.5:
		h.label = classifier.P2P
	case h.label == classifier.P2P && p > md.TLow:
	case long.p2pFlows < 0.5 && peers >= scanMinPeers && float64(mid.unanswered) >= scanMinFail*float64(mid.newFlows) &&
		(ppr < 0.5 || ppr > 2):
		h.label = classifier.Scan
	case p <= md.TLow:
		h.label = classifier.Normal
	case h.label != classifier.Scan:
		h.label = classifier.Unknown
	}
	h.p = v.P
	v.Label = h.label
	return v
}

func popcount(b *[overlapBits / 64]uint64) int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}
