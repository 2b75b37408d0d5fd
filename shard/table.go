package shard

import "time"

// bucketSlots is the number of flows sharing one home bucket. The tags of a
// bucket fit in one cache line, so a miss costs one line plus key compares
// only on tag matches.
const bucketSlots = 8

type bucket struct {
	tags  [bucketSlots]uint32 // 0: empty; else high bits of the hash, never 0
	flows [bucketSlots]Flow
}

// Config sizes a Table. Zero fields take the documented defaults.
type Config struct {
	Capacity int           // flows; rounded up to a power of two of buckets (default 1<<16)
	TCPIdle  time.Duration // idle time after which a TCP flow is expired (default 5 min; 30 s after FIN/RST)
	UDPIdle  time.Duration // idle time after which a UDP flow is expired (default 60 s)
}

// Defaults for Config.
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

// Stats counts what the table did. Plain integers: one owner, no atomics.
type Stats struct {
	Created uint64
	Expired uint64
	Evicted uint64 // forced out of a full bucket
	Active  int
}

// Table is a fixed-capacity flow table owned by a single worker.
type Table struct {
	buckets []bucket
	mask    uint64
	tcpIdle int64
	udpIdle int64
	sweep   int // next bucket the incremental sweep looks at
	// Leave is called with a flow just before its slot is reused or cleared,
	// so its decision record can be written. It must not keep f.
	Leave func(f *Flow, why Reason)
	Stats Stats
}

// New allocates a table; it is the table's only allocation.
func New(c Config) *Table {
	if c.Capacity <= 0 {
		c.Capacity = DefaultCapacity
	}
	if c.TCPIdle <= 0 {
		c.TCPIdle = DefaultTCPIdle
	}
	if c.UDPIdle <= 0 {
		c.UDPIdle = DefaultUDPIdle
	}
	n := 1
	for n*bucketSlots < c.Capacity {
		n <<= 1
	}
	return &Table{
		buckets: make([]bucket, n),
		mask:    uint64(n - 1),
		tcpIdle: int64(c.TCPIdle),
		udpIdle: int64(c.UDPIdle),
	}
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

// Touch reads the tag line of h's bucket and returns a word of it, so that
// a batch can start the cache misses of its lookups together before it does
// them one by one (Go has no prefetch instruction; an independent load is one).
func (t *Table) Touch(h uint64) uint32 { return t.buckets[h&t.mask].tags[0] }

// Lookup finds the flow of k or creates it. A new flow has First = now and
// everything else zero except Key. When the home bucket is full, an expired
// flow or else the least recently seen one is handed to Leave and replaced:
// the table never refuses a packet and never waits.
func (t *Table) Lookup(k *Key, h uint64, now int64) (f *Flow, created bool) {
	b := &t.buckets[h&t.mask]
	tag := tagOf(h)
	free := -1
	for i := range b.tags {
		switch b.tags[i] {
		case tag:
			if b.flows[i].Key.Equal(k) {
				f = &b.flows[i]
				if t.idle(f, now) {
					t.remove(b, i, Expired)
					return t.create(b, i, tag, k, now), true
				}
				return f, false
			}
		case 0:
			if free < 0 {
				free = i
			}
		}
	}
	if free < 0 {
		free = t.victim(b, now)
	}
	return t.create(b, free, tag, k, now), true
}

func (t *Table) create(b *bucket, i int, tag uint32, k *Key, now int64) *Flow {
	b.tags[i] = tag
	f := &b.flows[i]
	*f = Flow{First: now, Key: *k}
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
		if last := f.First + f.AgeNs(); last < oldest {
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
		if f.Flags&FlagFin != 0 {
			limit = min(limit, int64(finIdle))
		}
	}
	return now-(f.First+f.AgeNs()) > limit
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

// Sweep expires idle flows in at most n buckets, continuing where the last
// call stopped, so that a periodic call of bounded cost visits the whole table.
func (t *Table) Sweep(now int64, n int) {
	for ; n > 0; n-- {
		b := &t.buckets[t.sweep]
		for i := range b.tags {
			if b.tags[i] != 0 && t.idle(&b.flows[i], now) {
				t.remove(b, i, Expired)
			}
		}
		t.sweep++
		if t.sweep == len(t.buckets) {
			t.sweep = 0
		}
	}
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
