package shard

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

// Flow is one entry of the table: 128 bytes, streaming statistics only, no
// packet history. Direction index d is 0 for Lo->Hi and 1 for Hi->Lo.
type Flow struct {
	Key         Key       // first: it is 8-byte aligned and compared on every lookup
	First       int64     // time of the first packet, ns since the epoch
	Bytes       [2]uint64 // L4 payload bytes per direction
	Pkts        [2]uint32
	PayloadPkts [2]uint32
	LastTick    uint32    // last packet, in ticks of 2^20 ns (~1.05 ms) after First
	Evidence    uint32    // classifier evidence bits (classifier.Ev*)
	P           float32   // last probability of p2p
	Turn        [4]uint16 // payload bytes of the first four turns (a turn: payload in one direction until the other speaks)
	Small       [2]uint16 // payload packets <= SmallSize per direction (saturating)
	Large       [2]uint16 // payload packets >= LargeSize per direction (saturating)
	MaxLen      [2]uint16
	UTPConn     uint16 // uTP connection id seen first
	UTPSeq      uint16 // last uTP seq_nr seen from the initiator
	DecidedAt   uint16 // packet number at which the label became final
	Label       Label
	Flags       uint8
	Deep        uint8    // payload packets deep-parsed so far
	Turns       uint8    // number of turns begun (saturating at 255); low bit of LastDir below
	LastDir     uint8    // direction of the last payload packet + 1 (0: none yet)
	HSMatch     [2]uint8 // bytes of the plaintext handshake prefix matched so far per direction
	Coherent    uint8    // classifier scratch: uTP packets that continued the flow coherently
	More        uint8    // More* flags
}

// More flag bits (the Flags byte is full).
const (
	MoreConfirmed uint8 = 1 << iota // a p2p flow's answer from the other side was reported to the host delta
)

// Size thresholds of the packet-size mixture (payload bytes).
const (
	SmallSize = 100
	LargeSize = 1000
)

// Has reports whether all bits of flag are set.
func (f *Flow) Has(flag uint8) bool { return f.Flags&flag == flag }

// Initiator is the side (0 Lo, 1 Hi) that sent the first packet.
func (f *Flow) Initiator() uint8 {
	if f.Flags&FlagInitHi != 0 {
		return 1
	}
	return 0
}

// Packets is the total packet count in both directions.
func (f *Flow) Packets() uint32 { return f.Pkts[0] + f.Pkts[1] }

// Payloads is the total count of packets with payload in both directions.
func (f *Flow) Payloads() uint32 { return f.PayloadPkts[0] + f.PayloadPkts[1] }

// ageShift converts ns to the ~1 ms ticks of LastTick: a shift, not a division.
const ageShift = 20

// AgeNs is the time between the first and the last packet.
func (f *Flow) AgeNs() int64 { return int64(f.LastTick) << ageShift }

// AccountDecided is Account for a flow whose label is final: the counters
// that still matter (packets, payload packets and bytes per direction, the
// last-seen time for expiry, SYN+ACK and FIN/RST) and none of the size and
// turn statistics, which only feed scoring. They stay as they were at the
// decision, so the reasons a record gives are the ones that decided it. It
// has few branches: on a stream of mixed flows the shape updates' branches
// were a coin toss each, and this is the path almost every packet takes.
func (f *Flow) AccountDecided(dir uint8, payload int, tcpFlags uint8, now int64) {
	f.Pkts[dir]++
	if t := (now - f.First) >> ageShift; t > int64(f.LastTick) && t < 1<<32 {
		f.LastTick = uint32(t)
	}
	if tcpFlags&0x07 != 0 { // SYN, FIN, RST: rare on a decided flow
		f.accountFlags(tcpFlags)
	}
	var has uint32
	if payload != 0 {
		has = 1
	}
	f.PayloadPkts[dir] += has
	f.Bytes[dir] += uint64(payload)
}

// accountFlags notes SYN (with or without ACK) and FIN/RST.
func (f *Flow) accountFlags(tcpFlags uint8) {
	if tcpFlags&0x02 != 0 {
		if tcpFlags&0x10 != 0 {
			f.Flags |= FlagSynAck
		} else {
			f.Flags |= FlagSyn
		}
	}
	if tcpFlags&0x05 != 0 {
		f.Flags |= FlagFin
	}
}

// Account adds one packet of the given direction and payload size to the
// streaming statistics of a flow still being classified (AccountDecided
// once its label is final).
func (f *Flow) Account(dir uint8, payload int, tcpFlags uint8, now int64) {
	f.Pkts[dir]++
	if t := (now - f.First) >> ageShift; t > int64(f.LastTick) && t < 1<<32 {
		f.LastTick = uint32(t)
	}
	f.accountFlags(tcpFlags)
	if payload == 0 {
		return
	}
	f.PayloadPkts[dir]++
	f.Bytes[dir] += uint64(payload)
	if payload <= SmallSize && f.Small[dir] != 0xffff {
		f.Small[dir]++
	} else if payload >= LargeSize && f.Large[dir] != 0xffff {
		f.Large[dir]++
	}
	if payload > int(f.MaxLen[dir]) {
		f.MaxLen[dir] = uint16(min(payload, 0xffff))
	}
	if f.LastDir != dir+1 {
		f.LastDir = dir + 1
		if f.Turns != 255 {
			f.Turns++
		}
	}
	if t := int(f.Turns) - 1; t < len(f.Turn) {
		f.Turn[t] = uint16(min(int(f.Turn[t])+payload, 0xffff))
	}
}
