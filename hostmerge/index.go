package hostmerge

import (
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
)

// index finds a host by address: its state for the merger, and its newest
// view for the workers, who read it without locks while the merger runs.
// Views live in place, in the host's slot, so a merge publishes a changed
// view with one pointer store: the copy-on-write map it replaced copied a
// page, a bucket and an allocation per change, which at a million hosts
// was two thirds of a tick.
//
// It is an open-addressing table with linear probing and backward-shift
// deletion, sized once for the host bound: a flood inserts and evicts
// thousands of hosts a tick, and a Go map's deleted slots (tombstones) made
// every lookup of a new address, the flood's common case, probe far. Here a
// deletion leaves no tombstone and a miss stops at the first empty slot.
// A deletion that moves entries back makes moves odd while it runs, and a
// reader whose miss overlapped one probes again: a host in the table is
// never missed because another one left.
type index struct {
	slots []indexSlot
	mask  uint64
	moves atomic.Uint64
	// gaveUp counts lookups that gave up waiting for deletions (giveUp).
	gaveUp atomic.Uint64
}

// indexSlot is one slot. Readers follow hash and view; h is the merger's
// alone.
type indexSlot struct {
	hash atomic.Uint64        // hostHash of the host | occupied; 0 for an empty slot
	view atomic.Pointer[View] // the host's newest view; nil until its first
	h    *host                // nil for an empty slot
}

// occupied marks a slot's hash: hostHash's top bit chooses nothing (slots
// and shards take the low bits), so a slot is empty when its hash is 0.
const occupied = 1 << 63

// hostKey is a Host as plain bytes, which a view carries so that a reader
// can tell its host's view from another's without following a pointer.
type hostKey struct {
	ip   [16]byte
	path uint64 // Host.Path, and key4 for an IPv4 address
}

const key4 = 1 << 63

func keyOf(h Host) hostKey {
	k := hostKey{ip: h.Addr.As16(), path: h.Path}
	if h.Addr.Is4() {
		k.path |= key4
	}
	return k
}

// host is the Host k was made from (addresses never carry zones here).
func (k hostKey) host() Host {
	if k.path&key4 != 0 {
		return Host{Addr: netip.AddrFrom4([4]byte(k.ip[12:])), Path: k.path &^ key4}
	}
	return Host{Addr: netip.AddrFrom16(k.ip), Path: k.path}
}

// newIndex makes an index for at most n hosts, at most half full.
func newIndex(n int) *index {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	return &index{slots: make([]indexSlot, size), mask: uint64(size - 1)}
}

// get returns the host a whose hash is hash, or nil. The merger's lookup.
func (x *index) get(hash uint64, a Host) *host {
	for i := hash & x.mask; ; i = (i + 1) & x.mask {
		s := &x.slots[i]
		if s.h == nil {
			return nil
		}
		if s.hash.Load() == hash|occupied && s.h.addr == a {
			return s.h
		}
	}
}

// put adds h, which is not in the index; readers find it once its first
// view is published.
func (x *index) put(hash uint64, h *host) {
	i := hash & x.mask
	for x.slots[i].h != nil {
		i = (i + 1) & x.mask
	}
	h.slot = int32(i)
	s := &x.slots[i]
	s.h = h
	s.view.Store(nil)
	s.hash.Store(hash | occupied)
}

// publish makes v h's newest view.
func (x *index) publish(h *host, v *View) {
	h.view = v
	x.slots[h.slot].view.Store(v)
}

// del removes h. The entries after it in its run that could sit in its
// slot move back, so that no lookup needs to probe past an empty slot.
func (x *index) del(h *host) {
	i := uint64(h.slot)
	x.moves.Add(1)
	for j := (i + 1) & x.mask; x.slots[j].h != nil; j = (j + 1) & x.mask {
		// The entry at j may move to the hole at i when its home slot is
		// not cyclically within (i, j].
		sj := &x.slots[j]
		if home := sj.hash.Load() & x.mask; (j-home)&x.mask >= (j-i)&x.mask {
			si := &x.slots[i]
			si.h = sj.h
			si.h.slot = int32(i)
			// The view first: a reader matching the new hash with the
			// old view finds the key wrong and probes on.
			si.view.Store(sj.view.Load())
			si.hash.Store(sj.hash.Load())
			i = j
		}
	}
	s := &x.slots[i]
	s.hash.Store(0)
	s.view.Store(nil)
	s.h = nil
	x.moves.Add(1)
}

// giveUp bounds how long a reader's lookup waits out the deletions that
// keep overlapping it: each takes microseconds, so only a merger thread
// descheduled in the middle of one makes a reader wait, and past the bound
// the host reads as unseen (counted in gaveUp) rather than stall a worker.
const giveUp = 10 * time.Millisecond

// view returns the newest view of a whose hash is hash, nil for a host
// not in the index. Safe from any goroutine.
func (x *index) view(hash uint64, a Host) *View {
	var deadline time.Time
	key := keyOf(a)
	for try := 0; ; try++ {
		moves := x.moves.Load()
		for i := hash & x.mask; ; i = (i + 1) & x.mask {
			s := &x.slots[i]
			hs := s.hash.Load()
			if hs == 0 {
				break
			}
			// The hash and the view are two loads: a move between them
			// can only hide the host, which the moves check catches.
			if hs == hash|occupied {
				if v := s.view.Load(); v != nil && v.key == key {
					return v
				}
			}
		}
		if moves&1 == 0 && x.moves.Load() == moves {
			return nil // no deletion overlapped: a true miss
		}
		switch {
		case try == 8:
			deadline = time.Now().Add(giveUp)
		case try > 8 && time.Now().After(deadline):
			x.gaveUp.Add(1)
			return nil
		}
		runtime.Gosched()
	}
}

// rangeViews calls fn for every host with a view, in slot order. Exact
// when no merge runs meanwhile; beside one, a host moved by a deletion may
// be seen twice or not at all.
func (x *index) rangeViews(fn func(a Host, v *View)) {
	for i := range x.slots {
		if v := x.slots[i].view.Load(); v != nil {
			fn(v.key.host(), v)
		}
	}
}
