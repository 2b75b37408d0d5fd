// Package cowmap is a copy-on-write hash map for one writer and many
// lock-free readers. Every frozen version stays valid and unchanged while
// the writer builds the next one, copying only the pages and buckets it
// changes: publishing a version costs what changed, not what the map
// holds. The host snapshot uses it so that a 100 ms merge with a few
// thousand changed hosts stays a few milliseconds at a million hosts,
// where rebuilding every dirty shard's Go map cost the whole tick.
//
// The map is made for a capacity; past capacity×4 keys it doubles, which
// rehashes every key in one change (the builder keeps frozen versions
// intact), so a map whose size is known, like the bounded hosts, is made
// for it and never grows, and pages nobody wrote are one shared empty
// page. Buckets sit
// in pages of 8 and pages in chunks of 512, so a version with a few changes
// copies the chunk table (one pointer per 4096 buckets), a chunk and a page
// per change, never a table the size of the map. A lookup reads the chunk
// table (small, cache-resident), a chunk, a page and the bucket's entries.
package cowmap

const (
	pageBits  = 3
	pageSize  = 1 << pageBits
	chunkBits = 9
	// load is the mean bucket length at capacity.
	load = 4
)

type entry[K comparable, V any] struct {
	hash uint64
	key  K
	val  V
}

type bucket[K comparable, V any] struct {
	entries []entry[K, V]
	gen     uint64 // the builder generation that may change entries in place
}

type page[K comparable, V any] struct {
	gen     uint64 // the builder generation that may change the page in place
	buckets [pageSize]bucket[K, V]
}

type chunk[K comparable, V any] struct {
	gen   uint64 // the builder generation that may change the chunk in place
	pages []*page[K, V]
}

// Map is one immutable version; the zero Map is empty.
type Map[K comparable, V any] struct {
	chunks []*chunk[K, V]
	mask   uint64
	n      int
}

// at returns bucket i's page: the one place that knows the layout.
func (m *Map[K, V]) at(i uint64) **page[K, V] {
	return &m.chunks[i>>(pageBits+chunkBits)].pages[i>>pageBits&(1<<chunkBits-1)]
}

// Len is the number of keys.
func (m *Map[K, V]) Len() int { return m.n }

// Get returns the value of key k whose hash is h: the hash the key was
// stored with, well mixed in its low bits (they choose the bucket).
func (m *Map[K, V]) Get(h uint64, k K) (V, bool) {
	if m.chunks != nil {
		i := h & m.mask
		es := (*m.at(i)).buckets[i&(pageSize-1)].entries
		for j := range es {
			if es[j].hash == h && es[j].key == k {
				return es[j].val, true
			}
		}
	}
	var zero V
	return zero, false
}

// Range calls fn for every key and value, in bucket order, until fn
// returns false.
func (m *Map[K, V]) Range(fn func(k K, v V) bool) {
	for _, c := range m.chunks {
		for _, p := range c.pages {
			for i := range p.buckets {
				for _, e := range p.buckets[i].entries {
					if !fn(e.key, e.val) {
						return
					}
				}
			}
		}
	}
}

// Builder changes a map and freezes versions of it. It is not safe for
// concurrent use; the versions it froze are.
type Builder[K comparable, V any] struct {
	m           Map[K, V]
	gen         uint64
	ownedChunks bool // m.chunks is this generation's copy
	// Grown counts the doublings.
	Grown int
}

// New makes a builder of an empty map sized for capacity keys.
func New[K comparable, V any](capacity int) *Builder[K, V] {
	n := pageSize
	for n*load < capacity {
		n <<= 1
	}
	return &Builder[K, V]{m: makeMap[K, V](n, 0), gen: 1}
}

// makeMap makes an empty map of n buckets (a power of two, at least a page)
// whose chunks generation gen may change in place.
func makeMap[K comparable, V any](n int, gen uint64) Map[K, V] {
	// Shared until written: gen 0 is never a builder's.
	empty := &page[K, V]{}
	npages := n / pageSize
	chunks := make([]*chunk[K, V], (npages+1<<chunkBits-1)>>chunkBits)
	for i := range chunks {
		c := &chunk[K, V]{gen: gen, pages: make([]*page[K, V], min(npages, 1<<chunkBits))}
		for j := range c.pages {
			c.pages[j] = empty
		}
		chunks[i] = c
	}
	return Map[K, V]{chunks: chunks, mask: uint64(n - 1)}
}

// Len is the number of keys.
func (b *Builder[K, V]) Len() int { return b.m.n }

// Get returns k's value in the version being built.
func (b *Builder[K, V]) Get(h uint64, k K) (V, bool) { return b.m.Get(h, k) }

// Freeze returns the current version, which will never change; the
// builder goes on from it.
func (b *Builder[K, V]) Freeze() Map[K, V] {
	b.gen++
	b.ownedChunks = false
	return b.m
}

// bucket returns h's bucket, ready to be changed in place.
func (b *Builder[K, V]) bucket(h uint64) *bucket[K, V] {
	if !b.ownedChunks {
		b.m.chunks = append([]*chunk[K, V](nil), b.m.chunks...)
		b.ownedChunks = true
	}
	i := h & b.m.mask
	cp := &b.m.chunks[i>>(pageBits+chunkBits)]
	if (*cp).gen != b.gen {
		*cp = &chunk[K, V]{gen: b.gen, pages: append([]*page[K, V](nil), (*cp).pages...)}
	}
	pp := b.m.at(i)
	if (*pp).gen != b.gen {
		p := *(*pp)
		p.gen = b.gen
		*pp = &p
	}
	bk := &(*pp).buckets[i&(pageSize-1)]
	if bk.gen != b.gen {
		bk.entries = append(make([]entry[K, V], 0, len(bk.entries)+1), bk.entries...)
		bk.gen = b.gen
	}
	return bk
}

// find returns k's index in h's bucket of the current version, or -1.
func (b *Builder[K, V]) find(h uint64, k K) int {
	i := h & b.m.mask
	es := (*b.m.at(i)).buckets[i&(pageSize-1)].entries
	for j := range es {
		if es[j].hash == h && es[j].key == k {
			return j
		}
	}
	return -1
}

// Set stores v under k (hash h), replacing any value k had.
func (b *Builder[K, V]) Set(h uint64, k K, v V) {
	// One walk to the bucket, which is this generation's after it (a
	// change copies it anyway), then the search in it.
	bk := b.bucket(h)
	for j := range bk.entries {
		if e := &bk.entries[j]; e.hash == h && e.key == k {
			e.val = v
			return
		}
	}
	bk.entries = append(bk.entries, entry[K, V]{hash: h, key: k, val: v})
	b.m.n++
	if b.m.n > int(b.m.mask+1)*load {
		b.grow()
	}
}

// grow moves every key into a map of twice the buckets, all of it this
// generation's (frozen versions keep the old one).
func (b *Builder[K, V]) grow() {
	old := b.m
	b.m = makeMap[K, V](int(old.mask+1)*2, b.gen) // fresh chunks: no copy before the first write
	b.m.n = old.n
	b.ownedChunks = true
	for _, c := range old.chunks {
		for _, p := range c.pages {
			for i := range p.buckets {
				for _, e := range p.buckets[i].entries {
					bk := b.bucket(e.hash)
					bk.entries = append(bk.entries, e)
				}
			}
		}
	}
	b.Grown++
}

// Delete removes k (hash h) and reports whether it was there.
func (b *Builder[K, V]) Delete(h uint64, k K) bool {
	j := b.find(h, k)
	if j < 0 {
		return false
	}
	bk := b.bucket(h)
	last := len(bk.entries) - 1
	bk.entries[j] = bk.entries[last]
	bk.entries[last] = entry[K, V]{} // drop the references it held
	bk.entries = bk.entries[:last]
	b.m.n--
	return true
}
