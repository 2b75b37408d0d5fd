package hostmerge

import (
	"net/netip"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/shard"
)

// counters are additive host quantities; deltas and windows share the type.
type counters struct {
	newFlows   float64 // flows this host initiated
	inbound    float64 // flows others initiated to this host
	btFlows    float64 // flows with a plaintext BitTorrent signature
	discovery  float64 // DHT, uTP, tracker, LSD flows
	p2pFlows   float64 // flows labelled p2p
	confirmed  float64 // p2p flows the other side answered: payload both ways or a TCP handshake
	unanswered float64 // initiated TCP flows whose SYN got no answer
	bytesUp    float64
	bytesDown  float64
}

func (c *counters) add(o *counters) {
	c.newFlows += o.newFlows
	c.inbound += o.inbound
	c.btFlows += o.btFlows
	c.discovery += o.discovery
	c.p2pFlows += o.p2pFlows
	c.confirmed += o.confirmed
	c.unanswered += o.unanswered
	c.bytesUp += o.bytesUp
	c.bytesDown += o.bytesDown
}

func (c *counters) scale(k float64) {
	c.newFlows *= k
	c.inbound *= k
	c.btFlows *= k
	c.discovery *= k
	c.p2pFlows *= k
	c.confirmed *= k
	c.unanswered *= k
	c.bytesUp *= k
	c.bytesDown *= k
}

// remote is one contact of a host with a peer.
type remote struct {
	host  netip.Addr
	peer  uint64 // hash of the remote address
	port  uint16
	proto uint8
	kind  uint8
}

// Kinds of remote contacts.
const (
	outbound = iota // the host opened a flow to peer:port
	msePeer         // a flow between host and peer has the MSE/PE shape
)

// prediction is a peer a discovery answer announced to host.
type prediction struct {
	host netip.Addr
	peer netip.AddrPort
}

// Delta is one worker's host events since the last merge. Its maps and
// slices keep their capacity across Reset, so a warmed-up worker does not
// allocate.
type Delta struct {
	hosts     map[netip.Addr]counters
	remotes   []remote
	predicted []prediction
	// Dropped counts events not recorded because the delta was full.
	Dropped uint64
	max     int
}

// NewDelta makes a delta that holds at most maxEvents remotes and predictions between merges.
func NewDelta(maxEvents int) *Delta {
	if maxEvents <= 0 {
		maxEvents = 1 << 16
	}
	return &Delta{hosts: make(map[netip.Addr]counters, 1024), max: maxEvents}
}

// Reset empties d after a merge.
func (d *Delta) Reset() {
	clear(d.hosts)
	d.remotes = d.remotes[:0]
	d.predicted = d.predicted[:0]
}

func (d *Delta) bump(a netip.Addr, fn func(c *counters)) {
	if !isHost(a) {
		return
	}
	c := d.hosts[a]
	fn(&c)
	d.hosts[a] = c
}

// FlowStart records a new flow from init to resp.
func (d *Delta) FlowStart(init, resp netip.AddrPort, proto uint8) {
	d.bump(init.Addr(), func(c *counters) { c.newFlows++ })
	d.bump(resp.Addr(), func(c *counters) { c.inbound++ })
	if !isHost(init.Addr()) {
		return
	}
	if len(d.remotes) >= d.max {
		d.Dropped++
		return
	}
	d.remotes = append(d.remotes, remote{host: init.Addr(), peer: addrHash(resp.Addr()), port: resp.Port(), proto: proto})
}

// FlowEvidence records evidence newly found on a flow between a and b.
func (d *Delta) FlowEvidence(a, b netip.Addr, added uint32, mseShaped bool) {
	if mseShaped && len(d.remotes)+2 <= d.max {
		d.remotes = append(d.remotes, remote{host: a, peer: addrHash(b), kind: msePeer}, remote{host: b, peer: addrHash(a), kind: msePeer})
	}
	var c counters
	if added&evBT != 0 {
		c.btFlows = 1
	}
	if added&evDiscovery != 0 {
		c.discovery = 1
	}
	if c == (counters{}) {
		return
	}
	d.bump(a, func(h *counters) { h.add(&c) })
	d.bump(b, func(h *counters) { h.add(&c) })
}

// FlowEnd records what a flow amounted to when it was decided or left the
// table: its label, whether the other side answered (a spoofed packet is
// never confirmed), its bytes as seen from the initiator, and an unanswered SYN.
func (d *Delta) FlowEnd(init, resp netip.Addr, label shard.Label, confirmed bool, up, down uint64, unanswered bool) {
	p2p, conf := 0.0, 0.0
	if label == shard.P2P {
		p2p = 1
		if confirmed {
			conf = 1
		}
	}
	d.bump(init, func(c *counters) {
		c.bytesUp += float64(up)
		c.bytesDown += float64(down)
		c.p2pFlows += p2p
		c.confirmed += conf
		if unanswered {
			c.unanswered++
		}
	})
	d.bump(resp, func(c *counters) {
		c.bytesUp += float64(down)
		c.bytesDown += float64(up)
		c.p2pFlows += p2p
		c.confirmed += conf
	})
}

// Predict records peers announced to host by a tracker, DHT or PEX answer.
func (d *Delta) Predict(host netip.Addr, peers *classifier.Peers) {
	for i := 0; i < peers.N; i++ {
		if len(d.predicted) >= d.max {
			d.Dropped++
			return
		}
		d.predicted = append(d.predicted, prediction{host: host, peer: peers.Addr[i]})
	}
}

const (
	evBT        = classifier.EvHandshake | classifier.EvExtension | classifier.EvDHT | classifier.EvUTP | classifier.EvUDPTracker | classifier.EvHTTPTracker | classifier.EvLSD | classifier.EvBTAgent | classifier.EvPredicted
	evDiscovery = classifier.EvDHT | classifier.EvUTP | classifier.EvUDPTracker | classifier.EvHTTPTracker | classifier.EvLSD
)

func addrHash(a netip.Addr) uint64 {
	b := a.As16()
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// isHost excludes group and placeholder addresses (LSD's multicast group,
// broadcast, 0.0.0.0): they are destinations, not hosts with behaviour.
func isHost(a netip.Addr) bool {
	if !a.IsValid() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	return a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
