package classifier

import (
	"math"
	"net/netip"
)

// Label is a flow's or host's class.
type Label uint8

// Labels. Unknown is the hysteresis band between the two thresholds.
const (
	Unknown Label = iota
	Normal
	P2P
	Scan // hosts only
)

func (l Label) String() string {
	switch l {
	case Normal:
		return "normal"
	case P2P:
		return "p2p"
	case Scan:
		return "scan"
	}
	return "unknown"
}

// IP protocol numbers the recognizers and features distinguish.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// Flow flag bits.
const (
	FlagFinal       uint8 = 1 << iota // label will not change; later packets skip all inspection
	FlagInitHi                        // the first packet came from Hi (Hi is the initiator)
	FlagSyn                           // a SYN without ACK was seen
	FlagSynAck                        // a SYN+ACK was seen
	FlagFin                           // FIN or RST seen
	FlagMSEReported                   // the flow's MSE shape was reported to the host delta
	FlagExhausted                     // inspection budget spent
	FlagHarvest                       // final, but answers with peer lists may still come: keep parsing them within the budget
)

// More flag bits (the Flags byte is full).
const (
	MoreConfirmed    uint8 = 1 << iota // a p2p flow's answer from the other side was reported to the host delta
	MoreTCP                            // the flow is TCP (set by Begin from the flow key)
	MoreHighPorts                      // both ports are >= 1024 (set by Begin from the flow key)
	MoreHostReported                   // the flow's strong evidence was reported to the host delta once answered
	MoreRedecided                      // a final normal label was overturned when a host turned p2p
)

// FlowState is everything the classifier keeps about one flow: streaming
// statistics, evidence bits, recognizer state and the label. The flow table
// (shard.Flow) embeds it after the key, 88 of its 128 bytes; nothing here
// refers to packet history. Direction index d is 0 for Lo->Hi and 1 for
// Hi->Lo of the flow key.
type FlowState struct {
	First       int64     // time of the first packet, ns since the epoch
	Bytes       [2]uint64 // L4 payload bytes per direction
	Pkts        [2]uint32
	PayloadPkts [2]uint32
	LastTick    uint32 // last packet, in ticks of 2^20 ns (~1.05 ms) after First
	Evidence    uint32 // Ev* bits
	// TunnelID, VLAN and Tunnel are the engine's, not the classifier's: the
	// identifier of the tunnel the flow's first packet came by (PPPoE
	// session, VNI, TEID, MPLS label, GRE key or ERSPAN session), its
	// innermost VLAN id, and what the tunnel is (shard's tunnel kinds).
	// Records show them.
	TunnelID  uint32
	P         uint16    // last probability of p2p, in 65535ths (records read it: Prob)
	Turn      [4]uint16 // TCP: payload bytes of the first four turns (a turn: payload in one direction until the other speaks); UDP: the uTP recognizer's reference timestamp
	Small     [2]uint16 // payload packets <= SmallSize per direction (saturating)
	Large     [2]uint16 // payload packets >= LargeSize per direction (saturating)
	VLAN      uint16    // engine's: see TunnelID
	UTPConn   uint16    // uTP connection id seen first
	UTPSeq    uint16    // last uTP seq_nr seen from the initiator
	DecidedAt uint16    // packet number at which the label became final
	Label     Label
	Flags     uint8
	Deep      uint8    // payload packets deep-parsed so far
	Turns     uint8    // number of turns begun (saturating at 255)
	LastDir   uint8    // direction of the last payload packet + 1 (0: none yet)
	HSMatch   [2]uint8 // bytes of the plaintext handshake prefix matched so far per direction
	Coherent  uint8    // uTP: top bit the reference direction, then answered, then the reference side's advances
	More      uint8    // More* flags
	Tunnel    uint8    // see TunnelID
}

// Begin resets s for a new flow first seen at now, with the protocol and
// ports of its key (Lo's port, Hi's port): the only facts of the key the
// features use, kept as two bits so the classifier never reads the key.
func (s *FlowState) Begin(now int64, proto uint8, loPort, hiPort uint16) {
	*s = FlowState{First: now}
	if proto == ProtoTCP {
		s.More |= MoreTCP
	}
	if loPort >= 1024 && hiPort >= 1024 {
		s.More |= MoreHighPorts
	}
}

// Prob is P as a probability.
func (s *FlowState) Prob() float64 { return float64(s.P) / 65535 }

// SetProb stores probability p in P.
func (s *FlowState) SetProb(p float64) { s.P = uint16(math.Round(min(max(p, 0), 1) * 65535)) }

// TCP reports whether the flow is TCP.
func (s *FlowState) TCP() bool { return s.More&MoreTCP != 0 }

// Size thresholds of the packet-size mixture (payload bytes).
const (
	SmallSize = 100
	LargeSize = 1000
)

// Has reports whether all bits of flag are set.
func (s *FlowState) Has(flag uint8) bool { return s.Flags&flag == flag }

// Initiator is the side (0 Lo, 1 Hi) that sent the first packet.
func (s *FlowState) Initiator() uint8 {
	if s.Flags&FlagInitHi != 0 {
		return 1
	}
	return 0
}

// Packets is the total packet count in both directions.
func (s *FlowState) Packets() uint32 { return s.Pkts[0] + s.Pkts[1] }

// Payloads is the total count of packets with payload in both directions.
func (s *FlowState) Payloads() uint32 { return s.PayloadPkts[0] + s.PayloadPkts[1] }

// ageShift converts ns to the ~1 ms ticks of LastTick: a shift, not a division.
const ageShift = 20

// AgeNs is the time between the first and the last packet.
func (s *FlowState) AgeNs() int64 { return int64(s.LastTick) << ageShift }

// LastSeen is the time of the last packet (to ~1 ms).
func (s *FlowState) LastSeen() int64 { return s.First + s.AgeNs() }

// AccountDecided is Account for a flow whose label is final: the counters
// that still matter (packets, payload packets and bytes per direction, the
// last-seen time for expiry, SYN+ACK and FIN/RST) and none of the size and
// turn statistics, which only feed scoring. They stay as they were at the
// decision, so the reasons a record gives are the ones that decided it. It
// has few branches: on a stream of mixed flows the shape updates' branches
// were a coin toss each, and this is the path almost every packet takes.
func (s *FlowState) AccountDecided(dir uint8, payload int, tcpFlags uint8, now int64) {
	s.Pkts[dir]++
	if t := (now - s.First) >> ageShift; t > int64(s.LastTick) && t < 1<<32 {
		s.LastTick = uint32(t)
	}
	if tcpFlags&0x07 != 0 { // SYN, FIN, RST: rare on a decided flow
		s.accountFlags(tcpFlags)
	}
	var has uint32
	if payload != 0 {
		has = 1
	}
	s.PayloadPkts[dir] += has
	s.Bytes[dir] += uint64(payload)
}

// accountFlags notes SYN (with or without ACK) and FIN/RST.
func (s *FlowState) accountFlags(tcpFlags uint8) {
	if tcpFlags&0x02 != 0 {
		if tcpFlags&0x10 != 0 {
			s.Flags |= FlagSynAck
		} else {
			s.Flags |= FlagSyn
		}
	}
	if tcpFlags&0x05 != 0 {
		s.Flags |= FlagFin
	}
}

// Account adds one packet of the given direction and payload size to the
// streaming statistics of a flow still being classified (AccountDecided
// once its label is final).
func (s *FlowState) Account(dir uint8, payload int, tcpFlags uint8, now int64) {
	s.Pkts[dir]++
	if t := (now - s.First) >> ageShift; t > int64(s.LastTick) && t < 1<<32 {
		s.LastTick = uint32(t)
	}
	s.accountFlags(tcpFlags)
	if payload == 0 {
		return
	}
	s.PayloadPkts[dir]++
	s.Bytes[dir] += uint64(payload)
	if payload <= SmallSize && s.Small[dir] != 0xffff {
		s.Small[dir]++
	} else if payload >= LargeSize && s.Large[dir] != 0xffff {
		s.Large[dir]++
	}
	if s.More&MoreTCP == 0 {
		return // turns are TCP's: a UDP flow keeps uTP state in Turn
	}
	if s.LastDir != dir+1 {
		s.LastDir = dir + 1
		if s.Turns != 255 {
			s.Turns++
		}
	}
	if t := int(s.Turns) - 1; t < len(s.Turn) {
		s.Turn[t] = uint16(min(int(s.Turn[t])+payload, 0xffff))
	}
}

// Answered reports whether both sides of the flow spoke: payload both ways,
// or a TCP handshake the responder completed. One spoofed packet is
// neither, so only answered flows may ban anybody.
func (s *FlowState) Answered() bool {
	return s.PayloadPkts[0] > 0 && s.PayloadPkts[1] > 0 || s.Flags&FlagSynAck != 0 && s.Payloads() > 0
}

// Packet is what the recognizers read of one packet: its L4 payload as
// captured and the few header fields some of them key on. The engine fills
// it from its decoder's output only for packets it inspects.
type Packet struct {
	Payload          []byte
	Dst              netip.Addr // LSD's multicast groups
	SrcPort, DstPort uint16     // DNS's ports
	Proto            uint8
	IPv6             bool // a UDP tracker's peer list holds IPv6 addresses
}
