package hostmerge

import "github.com/axiomhq/hyperloglog"

// smallSet is how many distinct hashes a half window holds exactly before
// it takes a HyperLogLog sketch. Most hosts stay under it (every source of
// a spoofed flood, with its single flow, does), so they cost no sketch, no
// allocation and no garbage.
const smallSet = 4

// distinct counts the distinct hashes seen over a window kept in two halves
// (rotated every half window).
//
// The count is the one the sketches gave when every half had its own: a
// sparse sketch counts by linear counting over 2^25 slots, which for a few
// hashes is exact (short of two hashes colliding in their top 25 bits).
// Once a half has a sketch it keeps it, reset at each rotation, as before.
type distinct struct {
	half [2]halfSet // the current half first
}

type halfSet struct {
	small [smallSet]uint64
	n     uint8
	sk    *hyperloglog.Sketch // once the half outgrew small; never dropped
}

// insert adds x to the current half.
func (d *distinct) insert(x uint64) {
	h := &d.half[0]
	if h.sk != nil {
		h.sk.InsertHash(x)
		return
	}
	for _, y := range h.small[:h.n] {
		if y == x {
			return
		}
	}
	if int(h.n) < smallSet {
		h.small[h.n] = x
		h.n++
		return
	}
	h.sk, _ = hyperloglog.NewSketch(hllPrec, true)
	for _, y := range h.small {
		h.sk.InsertHash(y)
	}
	h.sk.InsertHash(x)
	h.n = 0
}

// rotate makes the current half the older one and starts an empty current
// half (reusing the older one's memory).
func (d *distinct) rotate() {
	d.half[0], d.half[1] = d.half[1], d.half[0]
	h := &d.half[0]
	h.n = 0
	if h.sk != nil {
		h.sk.Reset()
	}
}

// count estimates the distinct hashes over both halves.
func (d *distinct) count() uint64 {
	a, b := &d.half[0], &d.half[1]
	switch {
	case a.sk == nil && b.sk == nil:
		n := uint64(a.n)
	next:
		for _, y := range b.small[:b.n] {
			for _, x := range a.small[:a.n] {
				if x == y {
					continue next
				}
			}
			n++
		}
		return n
	case b.sk == nil && b.n == 0:
		// Merging into an empty sparse sketch copies the other's set or
		// registers: the estimate is the other's own.
		return a.sk.Estimate()
	case a.sk == nil && a.n == 0:
		return b.sk.Estimate()
	}
	// The scratch sketch is sparse while both halves are, so small hosts
	// are counted from the sparse list instead of 1024 dense registers.
	u, _ := hyperloglog.NewSketch(hllPrec, true)
	for _, h := range [2]*halfSet{a, b} {
		if h.sk != nil {
			_ = u.Merge(h.sk)
			continue
		}
		for _, y := range h.small[:h.n] {
			u.InsertHash(y)
		}
	}
	return u.Estimate()
}
