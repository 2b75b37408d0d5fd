package hostmerge

import "unsafe"

// warmBatch is how many hosts the merge warms ahead of the work on them.
const warmBatch = 32

// inBatches calls fn with xs in batches of warmBatch, in order.
func inBatches[T any](xs []T, fn func(batch []T)) {
	for len(xs) > 0 {
		n := min(len(xs), warmBatch)
		fn(xs[:n])
		xs = xs[n:]
	}
}

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

// warmSlots warms the index slots of the n hosts addr gives (n at most
// warmBatch) and the first bytes of their state, in three passes whose
// loads do not wait on each other within a pass: the home slots, then the
// probe to each host by hash alone (its run now cached; get compares the
// address, which is in the host), then the hosts.
func (x *index) warmSlots(n int, addr func(j int) Host, bytes uintptr) (sum uint64) {
	var hashes [warmBatch]uint64
	for j := range n {
		hashes[j] = hostHash(addr(j))
		sum += x.slots[hashes[j]&x.mask].hash.Load()
	}
	var found [warmBatch]*host
	for j, h := range hashes[:n] {
		for i := h & x.mask; x.slots[i].h != nil; i = (i + 1) & x.mask {
			if x.slots[i].hash.Load() == h|occupied {
				found[j] = x.slots[i].h
				break
			}
		}
	}
	for _, h := range found[:n] {
		if h != nil {
			sum += warmLines(unsafe.Pointer(h), bytes)
		}
	}
	return sum
}
