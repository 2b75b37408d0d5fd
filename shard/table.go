package shard

import (
	"math"
	"math/bits"
	"time"
	"unsafe"

	"github.com/swarmguard/swarmguard/classifier"
)

// bucketSlots is the number of flows sharing one home bucket. The tags of a
// bucket fit in one cache line, so a miss costs one line plus key compares
// only on tag matches.
const bucketSlots = 8

type bucket struct {
	tags  [bucketSlots]uint32 // 0: empty; else high bits of the hash, never 0
	flows [bucketSlots]Flow
}

// TableConfig sizes a Table. Zero fields take the documented defaults.
type TableConfig struct {
	Capacity int           // flows; rounded up to a power of two of buckets (default 1<<16)
	TCPIdle  time.Duration // idle time after which a TCP flow is expired (default 5 min; 30 s after FIN/RST)
	UDPIdle  time.Duration // idle time after which a UDP flow is expired (default 60 s)
	// NewPerSecond bounds the new flows the table takes per second (in
	// steps of a tenth of a second). Beyond it a new flow is admitted only
	// if it is one of the sampled sixteenth (by its hash, so both
	// directions agree); the others pass uninspected and are counted as
	// shed. A flood of new flows then cannot evict the flows being
	// inspected. 0: no bound (offline classification).
	NewPerSecond int
	// Prefault writes every page of the table when it is made. A table
	// that several threads fill at once (the live workers, classify
	// --workers N) otherwise pays for each page's first write with a TLB
	// shootdown to every CPU running the process: the page was first read
	// as the shared zero page, and the write replaces it.
	Prefault bool
}

// Defaults for TableConfig.
const (
	DefaultCapacity = 1 << 16
	DefaultTCPIdle  = 5 * time.Minute
	DefaultUDPIdle  = 60 * time.Second
	finIdle         = 30 * time.Second
)

// Reason says why a flow left the table.
type Reason uint8

// Reasons a flow leaves the table.
const (
	Expired Reason = iota // idle timeout
	Evicted               // its bucket was full and it was the least recently seen
	Flushed               // end of input
)

// TableStats counts what the table did. Plain integers: one owner, no atomics.
type TableStats struct {
	Created uint64
	Expired uint64
	Evicted uint64 // forced out of a full bucket
	Shed    uint64 // packets of new flows over the NewPerSecond budget, not admitted
	Active  int
}

func (s *TableStats) add(o *TableStats) {
	s.Created += o.Created
	s.Expired += o.Expired
	s.Evicted += o.Evicted
	s.Shed += o.Shed
	s.Active += o.Active
}

// Table is a fixed-capacity flow table owned by a single worker. A flow
// lives in its home bucket, or in a second one its hash names when home is
// full (with one cuckoo step when both are): the table fills to ~95 % before
// it evicts, where one bucket per flow loses flows from ~70 %.
type Table struct {
	buckets []bucket
	n       uint64 // buckets; any count, indexed by multiply-shift
	tcpIdle int64
	udpIdle int64
	minIdle int64 // the shortest idle limit any flow can have
	// due[i] is a lower bound on when a flow of bucket i can first be idle
	// (its last packet plus minIdle; MaxInt64 when empty), and minDue the
	// least of them: Sweep reads one dense word per bucket, and nothing
	// at all until minDue has passed.
	due    []int64
	minDue int64
	// Leave is called with a flow just before its slot is reused or cleared,
	// so its decision record can be written. It must not keep f.
	Leave func(f *Flow, why Reason)
	Stats TableStats
	// The new-flow budget (TableConfig.NewPerSecond): perStep flows per
	// budgetStep, left of it in this step, and when the step began.
	perStep, left int
	stepAt        int64
}

// budgetStep is the new-flow budget's refill period.
const budgetStep = int64(100 * time.Millisecond)

// prefault writes the zero value into an element of every page of s, so
// that each page is faulted in by a write now (no zero page mapped first).
func prefault[T any](s []T) {
	var zero T
	stride := max(1, 4096/int(unsafe.Sizeof(zero)))
	for i := 0; i < len(s); i += stride {
		s[i] = zero
	}
}

// NewTable allocates a table; it is the table's only allocation.
func NewTable(c TableConfig) *Table {
	if c.Capacity <= 0 {
		c.Capacity = DefaultCapacity
	}
	if c.TCPIdle <= 0 {
		c.TCPIdle = DefaultTCPIdle
	}
	if c.UDPIdle <= 0 {
		c.UDPIdle = DefaultUDPIdle
	}
	n := (c.Capacity + bucketSlots - 1) / bucketSlots
	t := &Table{
		buckets: make([]bucket, n),
		n:       uint64(n),
		tcpIdle: int64(c.TCPIdle),
		udpIdle: int64(c.UDPIdle),
		minIdle: int64(min(c.TCPIdle, c.UDPIdle, finIdle)),
		due:     make([]int64, n),
		minDue:  math.MaxInt64,
	}
	for i := range t.due {
		t.due[i] = math.MaxInt64
	}
	if c.Prefault {
		prefault(t.buckets)
	}
	if c.NewPerSecond > 0 {
		t.perStep = max(1, c.NewPerSecond/10)
	}
	return t
}

// admit says whether a new flow of hash h may be created at now.
func (t *Table) admit(h uint64, now int64) bool {
	if t.perStep == 0 {
		return true
	}
	if now-t.stepAt >= budgetStep || now < t.stepAt {
		t.stepAt, t.left = now, t.perStep
	}
	if t.left > 0 {
		t.left--
		return true
	}
	if h>>60 == 0 { // the sampled sixteenth
		return true
	}
	t.Stats.Shed++
	return false
}

// noteDue lowers the due time of bucket b for a flow last seen at last.
func (t *Table) noteDue(b *bucket, last int64) {
	i := (uintptr(unsafe.Pointer(b)) - uintptr(unsafe.Pointer(&t.buckets[0]))) / unsafe.Sizeof(bucket{})
	at := last + t.minIdle
	t.due[i] = min(t.due[i], at)
	t.minDue = min(t.minDue, at)
}

// buckets of h: the home bucket from the high bits, the other from the low
// bits mixed again (multiply-shift maps a 64-bit value onto [0, n)).
func (t *Table) pair(h uint64) (uint64, uint64) {
	b1, _ := bits.Mul64(h, t.n)
	b2, _ := bits.Mul64(bits.RotateLeft64(h, 32)*0x9e3779b97f4a7c15, t.n)
	return b1, b2
}

// Capacity is the number of flows the table holds.
func (t *Table) Capacity() int { return len(t.buckets) * bucketSlots }

func tagOf(h uint64) uint32 {
	tag := uint32(h >> 32)
	if tag == 0 {
		tag = 1
	}
	return tag
}

// home is h's home bucket (multiply-shift of the high bits).
func (t *Table) home(h uint64) *bucket {
	i, _ := bits.Mul64(h, t.n)
	return &t.buckets[i]
}

// Lookup finds the flow of k or creates it. A new flow has First = now and
// everything else zero except Key. When the home bucket is full, an expired
// flow or else the least recently seen one is handed to Leave and replaced:
// the table never waits. It returns nil only for a new flow over the
// new-flow budget (TableConfig.NewPerSecond): shed, it passes uninspected.
func (t *Table) Lookup(k *Key, h uint64, now int64) (f *Flow, created bool) {
	// The path of almost every packet: the home bucket's tag line, inline.
	tag := tagOf(h)
	b1 := t.home(h)
	for i := range b1.tags {
		if b1.tags[i] == tag && b1.flows[i].Key.Equal(k) {
			return t.found(b1, i, tag, k, now)
		}
	}
	return t.miss(k, h, b1, tag, now)
}

// FindWords returns the live flow whose key has these words (Tail packs
// the last one) when it sits in its home bucket, else nil: no insert, no
// expiry, no second bucket. h is HashWords of the same words. It is the
// decided-flow fast path's lookup, which keys a packet straight from its
// header without building a Key; a nil answer sends the packet down the
// full path (Lookup), which handles everything else.
func (t *Table) FindWords(lo0, lo1, hi0, hi1, tail, h uint64, now int64) *Flow {
	tag := tagOf(h)
	b := t.home(h)
	for i := range b.tags {
		if f := &b.flows[i]; b.tags[i] == tag && f.Key.hasWords(lo0, lo1, hi0, hi1, tail) {
			if t.idle(f, now) {
				return nil
			}
			return f
		}
	}
	return nil
}

// Home returns h's home bucket tag line, for a burst to prefetch.
func (t *Table) Home(h uint64) *[bucketSlots]uint32 { return &t.home(h).tags }

// Candidate returns the first slot of h's home bucket whose tag is h's, or
// nil: the flow a burst prefetches before it compares the key (Check).
func (t *Table) Candidate(h uint64) (tag *uint32, f *Flow) {
	b := t.home(h)
	want := tagOf(h)
	for i := range b.tags {
		if b.tags[i] == want {
			return &b.tags[i], &b.flows[i]
		}
	}
	return nil, nil
}

// Check reports whether the slot Candidate returned still holds the live
// flow with these key words: the table may have changed since (an insert,
// an eviction, an expiry), so a burst verifies before it uses the flow.
func (t *Table) Check(tag *uint32, f *Flow, lo0, lo1, hi0, hi1, tail, h uint64, now int64) bool {
	return *tag == tagOf(h) && f.Key.hasWords(lo0, lo1, hi0, hi1, tail) && !t.idle(f, now)
}

// miss looks in the second bucket, then inserts.
func (t *Table) miss(k *Key, h uint64, b1 *bucket, tag uint32, now int64) (*Flow, bool) {
	_, i2 := t.pair(h)
	b2 := &t.buckets[i2]
	if b2 != b1 {
		if i, ok := b2.find(tag, k); ok {
			return t.found(b2, i, tag, k, now)
		}
	}
	if !t.admit(h, now) {
		return nil, false
	}
	// New flow: its home bucket, the other one only when home is full, so
	// that almost every lookup reads one tag line.
	if f1, _ := b1.free(); f1 >= 0 {
		return t.create(b1, f1, tag, k, now), true
	}
	if f2, _ := b2.free(); f2 >= 0 {
		return t.create(b2, f2, tag, k, now), true
	}
	// Both full: move one resident to its other bucket if that has room
	// (one cuckoo step, paid only on overflow), else evict.
	if i := t.relocate(b1); i >= 0 {
		return t.create(b1, i, tag, k, now), true
	}
	if i := t.relocate(b2); i >= 0 {
		return t.create(b2, i, tag, k, now), true
	}
	return t.create(b1, t.victim(b1, now), tag, k, now), true
}

// find returns the slot of k in b.
func (b *bucket) find(tag uint32, k *Key) (int, bool) {
	for i := range b.tags {
		if b.tags[i] == tag && b.flows[i].Key.Equal(k) {
			return i, true
		}
	}
	return -1, false
}

// free returns a free slot of b (-1 if none) and how many are free.
func (b *bucket) free() (slot, n int) {
	slot = -1
	for i := range b.tags {
		if b.tags[i] == 0 {
			if slot < 0 {
				slot = i
			}
			n++
		}
	}
	return slot, n
}

func (t *Table) found(b *bucket, i int, tag uint32, k *Key, now int64) (*Flow, bool) {
	f := &b.flows[i]
	if t.idle(f, now) {
		t.remove(b, i, Expired)
		return t.create(b, i, tag, k, now), true
	}
	return f, false
}

// relocate moves a flow of the full bucket b to its other bucket, if one
// has a free slot there, and returns the slot it freed (-1 if none).
func (t *Table) relocate(b *bucket) int {
	for i := range b.flows {
		h := b.flows[i].Key.Hash()
		i1, i2 := t.pair(h)
		other := &t.buckets[i1]
		if other == b {
			other = &t.buckets[i2]
		}
		if other == b {
			continue
		}
		if j, _ := other.free(); j >= 0 {
			other.tags[j], other.flows[j] = b.tags[i], b.flows[i]
			b.tags[i] = 0
			t.noteDue(other, other.flows[j].LastSeen())
			return i
		}
	}
	return -1
}

func (t *Table) create(b *bucket, i int, tag uint32, k *Key, now int64) *Flow {
	b.tags[i] = tag
	f := &b.flows[i]
	f.Key = *k
	f.Begin(now, k.Proto, k.LoPort, k.HiPort)
	t.noteDue(b, now)
	t.Stats.Created++
	t.Stats.Active++
	return f
}

// victim picks the slot to reuse in a full bucket: the first idle flow, else
// the one seen least recently.
func (t *Table) victim(b *bucket, now int64) int {
	oldest, at := int64(1<<63-1), 0
	for i := range b.flows {
		f := &b.flows[i]
		if t.idle(f, now) {
			t.remove(b, i, Expired)
			return i
		}
		if last := f.LastSeen(); last < oldest {
			oldest, at = last, i
		}
	}
	t.remove(b, at, Evicted)
	return at
}

func (t *Table) idle(f *Flow, now int64) bool {
	limit := t.udpIdle
	if f.Key.Proto == 6 {
		limit = t.tcpIdle
		if f.Flags&classifier.FlagFin != 0 {
			limit = min(limit, int64(finIdle))
		}
	}
	return now-f.LastSeen() > limit
}

func (t *Table) remove(b *bucket, i int, why Reason) {
	switch why {
	case Expired:
		t.Stats.Expired++
	case Evicted:
		t.Stats.Evicted++
	}
	t.Stats.Active--
	if t.Leave != nil {
		t.Leave(&b.flows[i], why)
	}
	b.tags[i] = 0
}

// Sweep expires every flow idle at now: a flow leaves the table at the
// first Sweep after its idle limit has passed. It looks only into buckets
// whose due time has come, and returns at once when none has.
func (t *Table) Sweep(now int64) {
	if now < t.minDue {
		return
	}
	next := int64(math.MaxInt64)
	for i := range t.due {
		if t.due[i] <= now {
			t.due[i] = t.sweepBucket(&t.buckets[i], now)
		}
		next = min(next, t.due[i])
	}
	t.minDue = next
}

// sweepBucket expires b's idle flows and returns b's new due time.
func (t *Table) sweepBucket(b *bucket, now int64) int64 {
	due := int64(math.MaxInt64)
	for i := range b.tags {
		if b.tags[i] == 0 {
			continue
		}
		f := &b.flows[i]
		if t.idle(f, now) {
			t.remove(b, i, Expired)
			continue
		}
		due = min(due, f.LastSeen()+t.minIdle)
	}
	return due
}

// Buckets is the number of buckets, the n at which Sweep covers the table once.
func (t *Table) Buckets() int { return len(t.buckets) }

// Flush hands every live flow to Leave with reason Flushed and empties the table.
func (t *Table) Flush() {
	for bi := range t.buckets {
		b := &t.buckets[bi]
		for i := range b.tags {
			if b.tags[i] != 0 {
				t.remove(b, i, Flushed)
			}
		}
	}
}

// RangeBuckets calls fn for every live flow of n buckets from bucket from,
// wrapping at the end, and returns the bucket after them: a pass over the
// table in bounded steps.
func (t *Table) RangeBuckets(from, n int, fn func(f *Flow)) int {
	nb := len(t.buckets)
	for range min(n, nb) {
		from %= nb
		b := &t.buckets[from]
		for i := range b.tags {
			if b.tags[i] != 0 {
				fn(&b.flows[i])
			}
		}
		from++
	}
	return from % nb
}

// Range calls fn for every live flow, in table order.
func (t *Table) Range(fn func(f *Flow)) {
	for bi := range t.buckets {
		b := &t.buckets[bi]
		for i := range b.tags {
			if b.tags[i] != 0 {
				fn(&b.flows[i])
			}
		}
	}
}
