package shard

import (
	"encoding/binary"

	"github.com/swarmguard/swarmguard/classifier"

	"github.com/swarmguard/swarmguard/shard/packet"
)

// v4mapped is the low address word's prefix of an IPv4-mapped address.
const v4mapped = 0xffff << 32

// fast is the path of a packet whose flow is already decided, for the
// common frame: untagged Ethernet, IPv4 without options or fragmentation or
// IPv6 without extension headers, TCP or UDP. It reads the words of the
// flow's Key and the counters' input straight from the header bytes,
// without filling a packet.Meta or building a Key, finds the flow in its
// home bucket and applies the cached label. It reports false, having
// changed nothing, for anything else: another frame shape, a header the
// full decoder would call malformed, a flow that is new, undecided, idle,
// outside its home bucket, harvesting, or p2p but not yet confirmed. The
// full path then handles the packet from the start. FuzzFastPath checks
// that it agrees with the full path on every frame it takes;
// TestFastPathSameRecords, that the records do not change.
func (w *Worker) fast(frame []byte, now int64) (Verdict, bool) {
	var r hdrRec
	if !parseHdr(frame, &r) {
		return Pass, false
	}
	return w.fastParsed(&r, now)
}

// fastParsed is fast for a frame parseHdr has read into r.
func (w *Worker) fastParsed(r *hdrRec, now int64) (Verdict, bool) {
	f := w.table.FindWords(r.lo0, r.lo1, r.hi0, r.hi1, r.tail, r.hash, now)
	if f == nil {
		return Pass, false
	}
	return w.decided(f, r, now)
}

// packetParsed is Packet for an Ethernet frame parseHdr has read into r
// (the replay's reader parsed it to choose the lane).
func (w *Worker) packetParsed(frame []byte, r *hdrRec, now int64) Verdict {
	if !w.slowOnly {
		if v, ok := w.fastParsed(r, now); ok {
			return v
		}
	}
	return w.full(packet.LinkEthernet, frame, now)
}

// decided applies f's cached label to the packet r if f is final and needs
// nothing more from its packets than counting.
func (w *Worker) decided(f *Flow, r *hdrRec, now int64) (Verdict, bool) {
	if f.Flags&(classifier.FlagFinal|classifier.FlagHarvest) != classifier.FlagFinal ||
		f.Label == classifier.P2P && f.More&classifier.MoreConfirmed == 0 {
		return Pass, false
	}
	w.now = now
	w.Stats.Packets++
	w.Stats.Decided++
	f.AccountDecided(r.dir, int(r.payload), r.flags, now)
	if f.Label == classifier.P2P {
		w.Stats.Dropped++
		return Drop, true
	}
	return Pass, true
}

// hdrRec is one frame as parseHdr reads it: the words of its flow's
// Key (addresses as packet.Addr16 words, IPv4 mapped; Tail),
// their hash, its direction, L4 payload length on the wire and TCP flags.
type hdrRec struct {
	lo0, lo1, hi0, hi1, tail, hash uint64
	payload                        int32
	dir, flags                     uint8
	tunnel                         bool // UDP on a tunnel's port: the full decoder may key the inner flow
}

// parseHdr reads an untagged Ethernet frame carrying IPv4 without options
// or fragmentation, or IPv6 without extension headers, and TCP or UDP, into
// r. It reports false for anything else and for every header the full
// decoder would call malformed.
func parseHdr(frame []byte, r *hdrRec) bool {
	if len(frame) < 14+20+8 {
		return false
	}
	var (
		l4             int // offset of the L4 header
		avail, wire    int // L4 bytes the full decoder would see, and on the wire
		proto          uint8
		s0, s1, d0, d1 uint64
	)
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case 0x0800:
		// Version 4 with a 20-byte header, no MF, offset 0.
		if frame[14] != 0x45 || binary.BigEndian.Uint16(frame[20:22])&0x3fff != 0 {
			return false
		}
		total := int(binary.BigEndian.Uint16(frame[16:18]))
		l4, avail, wire, proto = 14+20, min(len(frame)-14, total)-20, total-20, frame[23]
		s1 = v4mapped | uint64(binary.BigEndian.Uint32(frame[26:30]))
		d1 = v4mapped | uint64(binary.BigEndian.Uint32(frame[30:34]))
	case 0x86dd:
		if len(frame) < 14+40+8 || frame[14]>>4 != 6 {
			return false
		}
		plen := int(binary.BigEndian.Uint16(frame[18:20]))
		l4, avail, wire, proto = 14+40, min(len(frame)-14-40, plen), plen, frame[20]
		s0, s1 = binary.BigEndian.Uint64(frame[22:30]), binary.BigEndian.Uint64(frame[30:38])
		d0, d1 = binary.BigEndian.Uint64(frame[38:46]), binary.BigEndian.Uint64(frame[46:54])
	default:
		return false
	}
	switch proto {
	case packet.ProtoTCP:
		if avail < 20 {
			return false
		}
		off := int(frame[l4+12]>>4) * 4
		if off < 20 || avail < off {
			return false
		}
		r.payload = int32(max(0, wire-off))
		r.flags = frame[l4+13]
	case packet.ProtoUDP:
		if avail < 8 {
			return false
		}
		ulen := int(binary.BigEndian.Uint16(frame[l4+4 : l4+6]))
		if ulen < 8 || ulen > wire {
			ulen = wire
		}
		r.payload = int32(max(0, ulen-8))
		r.flags = 0
	default:
		return false
	}
	sp, dp := binary.BigEndian.Uint16(frame[l4:l4+2]), binary.BigEndian.Uint16(frame[l4+2:l4+4])
	// A datagram on a tunnel's port may be keyed by its inner flow: the
	// key here is the outer one (for the fast path a miss, for the
	// replay's lane choice a full decode).
	r.tunnel = proto == packet.ProtoUDP && sp|dp >= 2152 && packet.UDPTunnelPort(sp, dp)
	// The symmetric order of Key.Set (Dir).
	if l4 == 14+20 { // IPv4: the high words are zero, half the work
		r.dir = Dir(0, s1, 0, d1, sp, dp)
		r.lo0, r.hi0, r.lo1, r.hi1 = 0, 0, s1, d1
		if r.dir == 1 {
			r.lo1, r.hi1, sp, dp = d1, s1, dp, sp
		}
		r.tail = Tail(sp, dp, 0, proto)
		r.hash = HashWords(0, r.lo1, 0, r.hi1, r.tail)
		return true
	}
	r.dir = Dir(s0, s1, d0, d1, sp, dp)
	r.lo0, r.lo1, r.hi0, r.hi1 = s0, s1, d0, d1
	if r.dir == 1 {
		r.lo0, r.lo1, r.hi0, r.hi1, sp, dp = d0, d1, s0, s1, dp, sp
	}
	r.tail = Tail(sp, dp, 0, proto)
	r.hash = HashWords(r.lo0, r.lo1, r.hi0, r.hi1, r.tail)
	return true
}
