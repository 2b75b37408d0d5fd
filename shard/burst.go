package shard

import (
	"unsafe"

	"github.com/swarmguard/swarmguard/shard/packet"
)

// MaxBurst is the most frames Burst works on at once: the size of the
// per-frame scratch it keeps in the Worker. Longer inputs go through in
// pieces (the live loop's rx batch of 64 in two). 32 and 64 measured the
// same; 16 was slower.
const MaxBurst = 32

// burstRec is one frame of a burst between the stages.
type burstRec struct {
	hdrRec
	tag *uint32 // the candidate slot's tag and flow (Table.Candidate)
	f   *Flow
	ok  bool // parseHdr took the frame and its home bucket has a candidate
}

// Burst runs frames through the path and writes their verdicts to out, with
// the same effect as Packet on each frame in turn; times[i] is frame i's
// time. out and times must be at least as long as frames.
//
// A packet of a decided flow waits on three cache misses in a row: its
// header, its bucket's tag line, its flow, each known only after the one
// before. Packet takes them one packet at a time. Burst takes a batch in
// stages: prefetch every header; parse and hash each and prefetch its tag
// line; find each candidate slot and prefetch the flow; then run the packets
// in order. The misses of a whole batch overlap instead of queueing. The
// table may change while the batch runs (a new flow, an eviction), so each
// packet checks its candidate before use, and any packet the fast path
// does not take goes down the full path as in Packet.
func (w *Worker) Burst(link packet.LinkType, frames [][]byte, times []int64, out []Verdict) {
	for len(frames) > 0 {
		n := min(len(frames), MaxBurst)
		w.burst(link, frames[:n], times[:n], out[:n])
		frames, times, out = frames[n:], times[n:], out[n:]
	}
}

func (w *Worker) burst(link packet.LinkType, frames [][]byte, times []int64, out []Verdict) {
	if link != packet.LinkEthernet || w.slowOnly {
		for i, fr := range frames {
			out[i] = w.full(link, fr, times[i])
		}
		return
	}
	rs := w.recs[:len(frames)]
	for _, fr := range frames {
		if len(fr) > 0 {
			prefetchLine(unsafe.Pointer(&fr[0]))
		}
	}
	t := w.table
	for i, fr := range frames {
		r := &rs[i]
		r.ok = parseHdr(fr, &r.hdrRec)
		if r.ok {
			prefetchLine(unsafe.Pointer(t.Home(r.hash)))
		}
	}
	for i := range rs {
		r := &rs[i]
		if r.ok {
			r.tag, r.f = t.Candidate(r.hash)
			r.ok = r.f != nil
			prefetchFlow(unsafe.Pointer(r.f))
		}
	}
	for i := range rs {
		r, now := &rs[i], times[i]
		if r.ok && t.Check(r.tag, r.f, r.lo0, r.lo1, r.hi0, r.hi1, r.tail, r.hash, now) {
			if v, ok := w.decided(r.f, &r.hdrRec, now); ok {
				out[i] = v
				continue
			}
		}
		out[i] = w.full(link, frames[i], now)
	}
}
