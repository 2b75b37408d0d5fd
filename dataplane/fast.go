package dataplane

import (
	"encoding/binary"

	"github.com/swarmguard/swarmguard/dataplane/packet"
	"github.com/swarmguard/swarmguard/shard"
)

// v4mapped is the low address word's prefix of an IPv4-mapped address.
const v4mapped = 0xffff << 32

// fast is the path of a packet whose flow is already decided, for the
// common frame: untagged Ethernet, IPv4 without options or fragmentation,
// TCP or UDP. It reads the words of the flow's shard.Key and the counters'
// input straight from the header bytes, without filling a packet.Meta or
// building a Key, finds the flow in its home bucket and applies the cached
// label. It reports false, having changed nothing, for anything else:
// another frame shape, a header the full decoder would call malformed, a
// flow that is new, undecided, idle, outside its home bucket, harvesting,
// or p2p but not yet confirmed. The full path then handles the packet from
// the start. FuzzFastPath checks that it agrees with the full path on
// every frame it takes; TestFastPathSameRecords, that the records do not
// change.
func (w *Worker) fast(frame []byte, now int64) (Verdict, bool) {
	var r v4Rec
	if !parseV4(frame, &r) {
		return Pass, false
	}
	f := w.table.FindWords(0, r.lo, 0, r.hi, r.tail, r.hash, now)
	if f == nil {
		return Pass, false
	}
	return w.decided(f, &r, now)
}

// decided applies f's cached label to the packet r if f is final and needs
// nothing more from its packets than counting.
func (w *Worker) decided(f *shard.Flow, r *v4Rec, now int64) (Verdict, bool) {
	if f.Flags&(shard.FlagFinal|shard.FlagHarvest) != shard.FlagFinal ||
		f.Label == shard.P2P && f.More&shard.MoreConfirmed == 0 {
		return Pass, false
	}
	w.now = now
	w.Stats.Packets++
	w.Stats.Decided++
	f.AccountDecided(r.dir, int(r.payload), r.flags, now)
	if f.Label == shard.P2P {
		w.Stats.Dropped++
		return Drop, true
	}
	return Pass, true
}

// v4Rec is one frame as parseV4 reads it: the words of its flow's
// shard.Key (IPv4-mapped addresses; shard.Tail), their hash, its direction,
// L4 payload length on the wire and TCP flags.
type v4Rec struct {
	lo, hi, tail, hash uint64
	payload            int32
	dir, flags         uint8
}

// parseV4 reads an untagged Ethernet frame carrying IPv4 without options
// or fragmentation, and TCP or UDP, into r. It reports false for anything
// else and for every header the full decoder would call malformed.
func parseV4(frame []byte, r *v4Rec) bool {
	if len(frame) < 14+20+8 {
		return false
	}
	// EtherType IPv4, version 4 with a 20-byte header, no MF, offset 0.
	if binary.BigEndian.Uint16(frame[12:14]) != 0x0800 || frame[14] != 0x45 ||
		binary.BigEndian.Uint16(frame[20:22])&0x3fff != 0 {
		return false
	}
	total := int(binary.BigEndian.Uint16(frame[16:18]))
	l4 := min(len(frame)-14, total) - 20 // L4 bytes the full decoder would see
	proto := frame[23]
	switch proto {
	case packet.ProtoTCP:
		if l4 < 20 {
			return false
		}
		off := int(frame[46]>>4) * 4
		if off < 20 || l4 < off {
			return false
		}
		r.payload = int32(max(0, total-20-off))
		r.flags = frame[47]
	case packet.ProtoUDP:
		if l4 < 8 {
			return false
		}
		wire := total - 20
		ulen := int(binary.BigEndian.Uint16(frame[38:40]))
		if ulen < 8 || ulen > wire {
			ulen = wire
		}
		r.payload = int32(max(0, ulen-8))
		r.flags = 0
	default:
		return false
	}
	src := v4mapped | uint64(binary.BigEndian.Uint32(frame[26:30]))
	dst := v4mapped | uint64(binary.BigEndian.Uint32(frame[30:34]))
	sp, dp := binary.BigEndian.Uint16(frame[34:36]), binary.BigEndian.Uint16(frame[36:38])
	// The symmetric order of shard.Key.Set: address, then port; ties go to
	// dir 1. Flags and selects, not branches: the direction of a packet in
	// a mixed stream is a coin toss for the branch predictor.
	var gt, eq, ge uint8
	if src > dst {
		gt = 1
	}
	if src == dst {
		eq = 1
	}
	if sp >= dp {
		ge = 1
	}
	dir := gt | eq&ge
	lo, hi, lp, hp := src, dst, sp, dp
	if dir == 1 {
		lo, hi, lp, hp = dst, src, dp, sp
	}
	r.lo, r.hi, r.dir = lo, hi, dir
	r.tail = shard.Tail(lp, hp, 0, proto)
	r.hash = shard.HashWords(0, lo, 0, hi, r.tail)
	return true
}
