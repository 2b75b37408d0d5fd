package hostmerge

import (
	"net/netip"

	"github.com/swarmguard/swarmguard/classifier"
)

// counters are additive host quantities; deltas and windows share the type.
type counters struct {
	newFlows   float64 // flows this host initiated
	inbound    float64 // flows others initiated to this host
	p2pFlows   float64 // flows labelled p2p
	confirmed  float64 // p2p flows the other side answered: payload both ways or a TCP handshake
	unanswered float64 // initiated TCP flows whose SYN got no answer
	bytesUp    float64
	bytesDown  float64
}

func (c *counters) add(o *counters) {
	c.newFlows += o.newFlows
	c.inbound += o.inbound
	c.p2pFlows += o.p2pFlows
	c.confirmed += o.confirmed
	c.unanswered += o.unanswered
	c.bytesUp += o.bytesUp
	c.bytesDown += o.bytesDown
}

func (c *counters) scale(k float64) {
	c.newFlows *= k
	c.inbound *= k
	c.p2pFlows *= k
	c.confirmed *= k
	c.unanswered *= k
	c.bytesUp *= k
	c.bytesDown *= k
}

// remote is one contact of a host with a peer.
type remote struct {
	host  Host
	peer  uint64 // hash of the remote host
	port  uint16
	proto uint8
	kind  uint8
}

// Kinds of remote contacts.
const (
	outbound = iota // the host opened a flow to peer:port
	msePeer         // a flow between host and peer went through the MSE/PE key exchange
	btPeer          // an answered flow between host and peer carries a BitTorrent signature
	discPeer        // ... a discovery protocol (DHT, uTP, tracker, LSD)
)

// prediction is a peer a discovery answer announced to host.
type prediction struct {
	host Host
	peer netip.AddrPort
}

// Delta is one worker's host events since the last merge. It is a fixed
// open-addressing table plus two bounded slices, all allocated up front:
// recording an event never allocates, and events past the bounds are counted
// in Dropped instead of growing anything.
type Delta struct {
	slots     []slot
	used      []int32 // occupied slot indexes, for Reset and the merger
	mask      uint64
	remotes   []remote
	predicted []prediction
	// Dropped counts events not recorded because the delta was full.
	Dropped uint64
	max     int
}

type slot struct {
	addr Host
	used bool
	c    counters
}

const maxProbe = 16

// NewDelta makes a delta that holds at most maxEvents remotes, predictions
// and (rounded up to a power of two) hosts between merges (default 1<<14).
func NewDelta(maxEvents int) *Delta {
	if maxEvents <= 0 {
		maxEvents = 1 << 14
	}
	n := 1
	for n < maxEvents {
		n <<= 1
	}
	return &Delta{
		slots:     make([]slot, n),
		used:      make([]int32, 0, n),
		mask:      uint64(n - 1),
		remotes:   make([]remote, 0, maxEvents),
		predicted: make([]prediction, 0, maxEvents),
		max:       maxEvents,
	}
}

// Reset empties d after a merge.
func (d *Delta) Reset() {
	for _, i := range d.used {
		d.slots[i] = slot{}
	}
	d.used = d.used[:0]
	d.remotes = d.remotes[:0]
	d.predicted = d.predicted[:0]
}

func (d *Delta) bump(a Host, fn func(c *counters)) {
	if !isHost(a.Addr) {
		return
	}
	h := hostHash(a)
	for i := uint64(0); i < maxProbe; i++ {
		j := (h + i) & d.mask
		s := &d.slots[j]
		if s.used && s.addr == a {
			fn(&s.c)
			return
		}
		if !s.used {
			s.used, s.addr = true, a
			d.used = append(d.used, int32(j))
			fn(&s.c)
			return
		}
	}
	d.Dropped++
}

// FlowStart records a new flow from init to resp's port.
func (d *Delta) FlowStart(init, resp Host, port uint16, proto uint8) {
	d.bump(init, func(c *counters) { c.newFlows++ })
	d.bump(resp, func(c *counters) { c.inbound++ })
	if !isHost(init.Addr) {
		return
	}
	if len(d.remotes) >= d.max {
		d.Dropped++
		return
	}
	d.remotes = append(d.remotes, remote{host: init, peer: hostHash(resp), port: port, proto: proto})
}

// PeerEvidence records that a flow between a and b carries strong evidence:
// ev are its BitTorrent evidence bits (signatures the recognizers verified
// against the protocol's own dynamics), mse that it went through the MSE/PE
// key exchange. Hosts count the distinct peers such flows reach, so many
// flows to one server, or a few chance matches, weigh little; recording
// the same flow again changes nothing.
func (d *Delta) PeerEvidence(a, b Host, ev uint32, mse bool) {
	kinds := [3]struct {
		on   bool
		kind uint8
	}{{mse, msePeer}, {ev&evBT != 0, btPeer}, {ev&evDiscovery != 0, discPeer}}
	for _, k := range kinds {
		if !k.on {
			continue
		}
		if len(d.remotes)+2 > d.max {
			d.Dropped++
			return
		}
		d.remotes = append(d.remotes, remote{host: a, peer: hostHash(b), kind: k.kind}, remote{host: b, peer: hostHash(a), kind: k.kind})
	}
}

// FlowEnd records what a flow amounted to when it was decided or left the
// table: its label, whether the other side answered (a spoofed packet is
// never confirmed), its bytes as seen from the initiator, and an unanswered SYN.
func (d *Delta) FlowEnd(init, resp Host, label classifier.Label, confirmed bool, up, down uint64, unanswered bool) {
	p2p, conf := 0.0, 0.0
	if label == classifier.P2P {
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

// FlowConfirmed records that a flow already labelled p2p got its answer
// from the other side after the decision (a flow decided at its first packet).
func (d *Delta) FlowConfirmed(a, b Host) {
	d.bump(a, func(c *counters) { c.confirmed++ })
	d.bump(b, func(c *counters) { c.confirmed++ })
}

// Predict records peers announced to host by a tracker, DHT or PEX answer.
func (d *Delta) Predict(host Host, peers *classifier.Peers) {
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

// isHost excludes group and placeholder addresses (LSD's multicast group,
// broadcast, 0.0.0.0): they are destinations, not hosts with behaviour.
func isHost(a netip.Addr) bool {
	if !a.IsValid() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	return a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
