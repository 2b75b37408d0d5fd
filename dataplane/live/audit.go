package live

import (
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/shard"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// AuditFrame is one frame of a p2p flow kept for the audit capture.
type AuditFrame struct {
	Time  int64  // ns
	Len   int    // on the wire
	Frame []byte // the first AuditSnap bytes
}

// Audit sizes. A worker keeps its last auditSlots frames (the ones that
// reached userspace: undecided flows' packets) cut to AuditSnap bytes, so
// that when a flow turns p2p its first packets, which made the decision,
// are still there to show.
const (
	AuditSnap  = 512
	auditSlots = 4096
)

// auditRing is a worker's ring of recent frames; only its worker touches it.
type auditRing struct {
	buf   []byte // auditSlots * AuditSnap
	lens  [auditSlots]uint16
	wire  [auditSlots]uint32
	times [auditSlots]int64
	next  uint64 // frames pushed so far
	meta  packet.Meta
	key   shard.Key
}

func newAuditRing() *auditRing { return &auditRing{buf: make([]byte, auditSlots*AuditSnap)} }

// push copies the head of one frame in.
func (a *auditRing) push(frame []byte, now int64) {
	i := a.next % auditSlots
	n := copy(a.buf[i*AuditSnap:(i+1)*AuditSnap], frame)
	a.lens[i], a.wire[i], a.times[i] = uint16(n), uint32(len(frame)), now
	a.next++
}

// framesOf returns, oldest first, up to max frames in the ring whose flow
// key is k (both directions): the flow's first packets when they are still
// there. It decodes each frame: it runs only when a flow turns p2p.
func (a *auditRing) framesOf(k *shard.Key, first int64, max int) []AuditFrame {
	var out []AuditFrame
	start := uint64(0)
	if a.next > auditSlots {
		start = a.next - auditSlots
	}
	for j := start; j < a.next && len(out) < max; j++ {
		i := j % auditSlots
		if a.times[i] < first {
			continue
		}
		f := a.buf[i*AuditSnap : i*AuditSnap+uint64(a.lens[i])]
		if packet.Decode(packet.LinkEthernet, f, &a.meta) != packet.OK {
			continue
		}
		a.key.Set(&a.meta)
		if a.key != *k {
			continue
		}
		out = append(out, AuditFrame{Time: a.times[i], Len: int(a.wire[i]), Frame: append([]byte(nil), f...)})
	}
	return out
}

// auditOf is what a decision carries to the audit capture: the flow's
// frames when it is p2p and auditing is on.
func (q *qworker) auditOf(f *shard.Flow, max int) []AuditFrame {
	if q.audit == nil || f.Label != classifier.P2P {
		return nil
	}
	return q.audit.framesOf(&f.Key, f.First, max)
}
