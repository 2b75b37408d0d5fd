package hostmerge

import "unsafe"

// warmBatch is how many hosts the merge warms ahead of the work on them.
const warmBatch = 32

// warmLines loads one word of each cache line of the n bytes at p and
// returns their sum, which the caller keeps so that the loads stay. Go has
// no prefetch instruction; independent loads are the next best thing: a
// merge at a million hosts waits ~400 ns on each host it reaches through a
// pointer (a cache and TLB miss, measured here), and loads with no
// dependency between them overlap, ten or more in flight.
func warmLines(p unsafe.Pointer, n uintptr) (sum uint64) {
	for off := uintptr(0); off < n; off += 64 {
		sum += uint64(*(*uint8)(unsafe.Add(p, off)))
	}
	return sum
}

// warmHosts warms the state of hosts hs, their views and their slots: what
// deriving and publishing their views reads and writes.
func (x *index) warmHosts(hs []*host) (sum uint64) {
	for _, h := range hs {
		sum += warmLines(unsafe.Pointer(h), unsafe.Sizeof(*h))
	}
	for _, h := range hs {
		if h.view != nil {
			sum += warmLines(unsafe.Pointer(h.view), unsafe.Sizeof(*h.view))
		}
		sum += uint64(*(*uint8)(unsafe.Pointer(&x.slots[h.slot])))
	}
	return sum
}

// warmSlots warms the index slots of hashes hs and the first n bytes of
// the hosts they find, in three passes whose loads do not wait on each
// other within a pass: the home slots, then the probe to each host (its run
// now cached), then the hosts.
func (x *index) warmSlots(hs []uint64, n uintptr) (sum uint64) {
	for _, h := range hs {
		sum += x.slots[h&x.mask].hash.Load()
	}
	var found [warmBatch]*host
	for i, h := range hs {
		for j := h & x.mask; x.slots[j].h != nil; j = (j + 1) & x.mask {
			if x.slots[j].hash.Load() == h|occupied {
				found[i] = x.slots[j].h
				break
			}
		}
	}
	for _, h := range found[:len(hs)] {
		if h != nil {
			sum += warmLines(unsafe.Pointer(h), n)
		}
	}
	return sum
}
