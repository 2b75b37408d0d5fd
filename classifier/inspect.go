package classifier

import (
	"time"
)

// Budget bounds deep inspection of a flow. After it is spent only the
// streaming counters of the flow move.
type Budget struct {
	Packets int           // payload packets deep-parsed per flow (default 8)
	Bytes   int           // bytes of each payload the signature matchers read (default 256)
	Age     time.Duration // flow age after which nothing is deep-parsed (default 10 s)
}

// DefaultBudget is the inspection budget of docs/DESIGN.md.
func DefaultBudget() Budget { return Budget{Packets: 8, Bytes: 256, Age: 10 * time.Second} }

// hsFailed marks a direction whose stream cannot start with the handshake.
const hsFailed = 0xff

// Scratch is a worker's reusable space for one packet's inspection.
type Scratch struct {
	Peers Peers // peers announced by the packet (tracker reply, DHT values, PEX)
}

// Exhausted reports whether f has spent its budget at time now, and marks it.
func (b *Budget) Exhausted(f *FlowState, now int64) bool {
	if f.Flags&FlagExhausted != 0 {
		return true
	}
	if int(f.Deep) >= b.Packets || now-f.First > int64(b.Age) {
		f.Flags |= FlagExhausted
		return true
	}
	return false
}

// Inspect runs the recognizers that apply at this packet's position in flow
// f (already accounted) and adds what they find to f.Evidence. It returns
// whether the evidence changed. Peers the packet announces are left in s.Peers.
func Inspect(f *FlowState, dir uint8, m *Packet, b *Budget, s *Scratch) bool {
	p := m.Payload
	if len(p) == 0 {
		return false
	}
	s.Peers.Reset()
	f.Deep++
	before := f.Evidence
	fromInit := dir == f.Initiator()
	firstInDir := f.PayloadPkts[dir] == 1
	if f.Payloads() == 1 && !fromInit {
		f.Evidence |= EvServerFirst
	}
	head := p[:min(len(p), b.Bytes)]
	if m.Proto == ProtoTCP {
		inspectTCP(f, dir, fromInit, firstInDir, p, head, s)
	} else {
		inspectUDP(f, dir, fromInit, firstInDir, m, p, head, s)
	}
	return f.Evidence != before
}

func inspectTCP(f *FlowState, dir uint8, fromInit, firstInDir bool, p, head []byte, s *Scratch) {
	// The handshake may be split across segments: match it as a stream prefix.
	if hs := f.HSMatch[dir]; hs != hsFailed && int(hs) < len(HandshakePrefix) {
		startedHere := hs == 0
		r := MatchHandshake(int(hs), head)
		if r < 0 {
			f.HSMatch[dir] = hsFailed
		} else {
			f.HSMatch[dir] = uint8(r)
			if r == len(HandshakePrefix) {
				f.Evidence |= EvHandshake
				if startedHere && len(p) >= HandshakeLen {
					if KnownPeerID(p[48:56]) {
						f.Evidence |= EvPeerID
					}
					wire(f, p[HandshakeLen:], s)
				}
			}
		}
		if r >= 0 {
			return
		}
	} else if f.Evidence&EvHandshake != 0 {
		wire(f, p, s)
		return
	}
	if firstInDir {
		switch {
		case IsTLS(head):
			f.Evidence |= EvTLS
			return
		case IsSSH(head):
			f.Evidence |= EvSSH
			return
		}
		h := ParseHTTP(p, &s.Peers)
		switch {
		case h.Tracker:
			f.Evidence |= EvHTTPTracker | EvTrackerReq
		case h.TrackerReply && f.Evidence&EvTrackerReq != 0:
			f.Evidence |= EvHTTPTracker
		case h.Request && fromInit:
			f.Evidence |= requestEvidence(h)
		case h.Response:
			if f.Evidence&(EvHTTPTracker|EvBTAgent) == 0 {
				f.Evidence |= EvHTTP
			}
		}
		if h.PeerID {
			f.Evidence |= EvPeerID
		}
		if h.Request || h.Response {
			return
		}
		if Printable(head) {
			f.Evidence |= EvTextFirst
			return
		}
		if LengthFramed(p) || !Random(p) {
			f.Evidence |= EvFramed
		}
	} else if !fromInit && f.Evidence&EvTrackerReq != 0 {
		// A tracker reply whose body is a segment of its own.
		if ok, _ := ParseTrackerBody(p, &s.Peers); ok {
			f.Evidence |= EvHTTPTracker
			return
		}
	}
	if f.Evidence&(evNormal|EvTextFirst) == 0 {
		wire(f, p, s)
	}
}

// requestEvidence is the evidence of an HTTP request that is no tracker
// announce: BitTorrent's User-Agent (webseed, metadata) or else plain HTTP.
func requestEvidence(h HTTP) uint32 {
	if h.BTAgent {
		return EvBTAgent
	}
	return EvHTTP
}

// wire checks peer wire framing on a segment assumed to start at a message
// boundary. Without a handshake it takes two or more fixed-length messages
// tiling the segment: a single length prefix over ciphertext proves nothing.
func wire(f *FlowState, p []byte, s *Scratch) {
	if len(p) == 0 {
		return
	}
	r := ParseWire(p, &s.Peers)
	if r.ExtHS || r.PEX || r.Fast && r.Tiled {
		f.Evidence |= EvExtension | EvPeerWire
		return
	}
	if !r.Tiled {
		return
	}
	if f.Evidence&EvHandshake != 0 || (r.Messages >= 2 && r.Fixed >= 1) {
		f.Evidence |= EvPeerWire
	}
}

func inspectUDP(f *FlowState, dir uint8, fromInit, firstInDir bool, m *Packet, p, head []byte, s *Scratch) {
	switch {
	case IsLSD(m.Dst, m.DstPort, p):
		f.Evidence |= EvLSD
		return
	case p[0] == 'd':
		if k := ParseKRPC(p, &s.Peers); k.Valid {
			f.Evidence |= EvDHT
			return
		}
	}
	if fromInit {
		if t := ParseUDPTrackerRequest(p, f.Evidence&EvUDPTrackerConn != 0); t.Request {
			f.Evidence |= EvUDPTrackerConn | EvUDPTracker
			return
		}
	} else if f.Evidence&EvUDPTrackerConn != 0 {
		if t := ParseUDPTrackerResponse(p, m.IPv6, &s.Peers); t.Response {
			return
		}
	}
	if UTPShape(p) {
		utp(f, dir, p)
		if f.Evidence&EvUTPShape != 0 {
			return
		}
	}
	if firstInDir {
		switch {
		case IsDNS(m.SrcPort, m.DstPort, head):
			f.Evidence |= EvDNS
		case IsQUIC(head):
			f.Evidence |= EvQUIC
		case IsSTUN(head):
			f.Evidence |= EvSTUN
		case Printable(head):
			f.Evidence |= EvTextFirst
		}
	}
}

// utp follows one uTP connection's dynamics. The first uTP-shaped packet
// is the reference: its connection id, seq_nr and timestamp (and its
// direction, in the top bit of Coherent). Packets from the same side count
// when they advance it (UTPAdvances: a later timestamp, seq_nr held or a
// little ahead), which moves the reference; a packet from the other side
// answers it (UTPAnswers: the same connection, ack_nr on the latest seq_nr),
// noted in bit 6. EvUTP needs an answer and an advance, or, with one side
// visible (asymmetric routing), three advances: a constant payload echoed
// back, whatever its shape, never gets there.
func utp(f *FlowState, dir uint8, p []byte) {
	h := UTP(p)
	if f.Evidence&EvUTPShape == 0 {
		if h.Window() > utpMaxWindow {
			return
		}
		f.Evidence |= EvUTPShape
		f.UTPConn, f.UTPSeq = h.ConnID(), h.Seq()
		f.setUTPTs(h.Timestamp())
		f.Coherent = dir << 7
		return
	}
	refDir := f.Coherent >> 7
	answered := f.Coherent & utpAnswered
	n := f.Coherent & utpAdvances
	if dir == refDir {
		maxDt := uint32(min(f.AgeNs()/1000+1e6, 1<<31))
		if !UTPAdvances(p, f.UTPConn, f.UTPSeq, f.utpTs(), maxDt) {
			return
		}
		f.UTPSeq = h.Seq()
		f.setUTPTs(h.Timestamp())
		if n < utpAdvances {
			n++
		}
	} else {
		if !UTPAnswers(p, f.UTPConn, f.UTPSeq) {
			return
		}
		answered = utpAnswered
	}
	f.Coherent = refDir<<7 | answered | n
	if answered != 0 && n >= 1 || n >= 3 {
		f.Evidence |= EvUTP
	}
}

// Bits of Coherent below the reference direction.
const (
	utpAnswered = 0x40 // the other side answered the reference side
	utpAdvances = 0x3f // the reference side's advances (saturating)
)

// utpTs and setUTPTs keep the uTP reference packet's timestamp in Turn: a
// UDP flow has no turns (Account counts them for TCP only).
func (s *FlowState) utpTs() uint32      { return uint32(s.Turn[0])<<16 | uint32(s.Turn[1]) }
func (s *FlowState) setUTPTs(ts uint32) { s.Turn[0], s.Turn[1] = uint16(ts>>16), uint16(ts) }
