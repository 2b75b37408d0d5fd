package hostmerge

// index finds a host's state by address. It is an open-addressing table
// with linear probing and backward-shift deletion, sized once for the host
// bound: a flood inserts and evicts thousands of hosts a tick, and a Go
// map's deleted slots (tombstones) made every lookup of a new address, the
// flood's common case, probe far (a quarter of a flood merge's time). Here
// a deletion leaves no tombstone and a miss stops at the first empty slot.
type index struct {
	slots []indexSlot
	mask  uint64
}

type indexSlot struct {
	hash uint64 // hostHash of h.addr; h nil for an empty slot
	h    *host
}

// newIndex makes an index for at most n hosts, at most half full.
func newIndex(n int) index {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	return index{slots: make([]indexSlot, size), mask: uint64(size - 1)}
}

// get returns the host a whose hash is hash, or nil.
func (x *index) get(hash uint64, a Host) *host {
	for i := hash & x.mask; ; i = (i + 1) & x.mask {
		s := &x.slots[i]
		if s.h == nil {
			return nil
		}
		if s.hash == hash && s.h.addr == a {
			return s.h
		}
	}
}

// put adds h, which is not in the index.
func (x *index) put(hash uint64, h *host) {
	i := hash & x.mask
	for x.slots[i].h != nil {
		i = (i + 1) & x.mask
	}
	x.slots[i] = indexSlot{hash: hash, h: h}
}

// del removes h. The entries after it in its run that could sit in its
// slot move back, so that no lookup needs to probe past an empty slot.
func (x *index) del(hash uint64, h *host) {
	i := hash & x.mask
	for x.slots[i].h != h {
		if x.slots[i].h == nil {
			return
		}
		i = (i + 1) & x.mask
	}
	for j := (i + 1) & x.mask; x.slots[j].h != nil; j = (j + 1) & x.mask {
		// The entry at j may move to the hole at i when its home slot is
		// not cyclically within (i, j].
		if home := x.slots[j].hash & x.mask; (j-home)&x.mask >= (j-i)&x.mask {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = indexSlot{}
}
