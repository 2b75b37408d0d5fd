package cowmap

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

func mix(k uint32) uint64 {
	x := uint64(k) * 0x9e3779b97f4a7c15
	return x ^ x>>29
}

// version is a frozen map and what it must hold.
type version struct {
	m    Map[uint32, int]
	want map[uint32]int
}

func (v *version) check(t testing.TB, hash func(uint32) uint64, label string) {
	t.Helper()
	if v.m.Len() != len(v.want) {
		t.Fatalf("%s: Len %d, want %d", label, v.m.Len(), len(v.want))
	}
	for k, want := range v.want {
		if got, ok := v.m.Get(hash(k), k); !ok || got != want {
			t.Fatalf("%s: Get(%d) = %d, %v; want %d", label, k, got, ok, want)
		}
	}
	n := 0
	v.m.Range(func(k uint32, got int) bool {
		n++
		if want, ok := v.want[k]; !ok || got != want {
			t.Fatalf("%s: Range gave %d=%d, want %d (present %v)", label, k, got, want, ok)
		}
		return true
	})
	if n != len(v.want) {
		t.Fatalf("%s: Range gave %d keys, want %d", label, n, len(v.want))
	}
}

// run applies ops (set, delete, freeze) to a builder and to a Go map, and
// checks that every frozen version still holds exactly what it held when
// frozen: later changes must never show through shared pages or buckets.
func run(t testing.TB, capacity int, hash func(uint32) uint64, ops []byte) {
	b := New[uint32, int](capacity)
	cur := map[uint32]int{}
	var versions []version
	for i := 0; i+4 < len(ops); i += 5 {
		k := binary.LittleEndian.Uint32(ops[i+1:]) % 4096
		switch ops[i] % 8 {
		case 0, 1, 2, 3:
			b.Set(hash(k), k, i)
			cur[k] = i
		case 4, 5:
			_, had := cur[k]
			if got := b.Delete(hash(k), k); got != had {
				t.Fatalf("op %d: Delete(%d) = %v, key present %v", i, k, got, had)
			}
			delete(cur, k)
		case 6:
			if b.Delete(hash(k+1<<20), k+1<<20) {
				t.Fatalf("op %d: deleted a key never set", i)
			}
		case 7:
			versions = append(versions, version{m: b.Freeze(), want: maps.Clone(cur)})
		}
		if b.Len() != len(cur) {
			t.Fatalf("op %d: builder Len %d, want %d", i, b.Len(), len(cur))
		}
	}
	versions = append(versions, version{m: b.Freeze(), want: cur})
	for i := range versions {
		versions[i].check(t, hash, fmt.Sprintf("version %d of %d", i, len(versions)))
	}
}

func randomOps(r *rand.Rand, n, keys int) []byte {
	ops := make([]byte, 5*n)
	for i := range n {
		ops[5*i] = byte(r.IntN(8))
		binary.LittleEndian.PutUint32(ops[5*i+1:], uint32(r.IntN(keys)))
	}
	return ops
}

func TestMatchesMapAcrossVersions(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, capacity := range []int{0, 100, 5000} {
		for range 10 {
			run(t, capacity, mix, randomOps(r, 3000, 600))
		}
	}
}

// A map made small doubles as keys come, and the versions frozen before
// each doubling still hold their keys.
func TestGrowKeepsVersions(t *testing.T) {
	b := New[uint32, int](0)
	var versions []version
	want := map[uint32]int{}
	for k := range uint32(20000) {
		b.Set(mix(k), k, int(k))
		want[k] = int(k)
		if k%1500 == 0 {
			versions = append(versions, version{m: b.Freeze(), want: maps.Clone(want)})
		}
	}
	if b.Grown < 8 {
		t.Fatalf("grew %d times for 20,000 keys from one page", b.Grown)
	}
	versions = append(versions, version{m: b.Freeze(), want: want})
	for i := range versions {
		versions[i].check(t, mix, fmt.Sprintf("version %d", i))
	}
}

// Hashes that agree in their low bits pile keys into a few buckets; equal
// hashes are told apart by the key.
func TestCollisions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, hash := range []func(uint32) uint64{
		func(k uint32) uint64 { return uint64(k % 7) },
		func(k uint32) uint64 { return uint64(k%5) << 40 },
		func(uint32) uint64 { return 0 },
	} {
		for range 5 {
			run(t, 1000, hash, randomOps(r, 2000, 300))
		}
	}
}

// A frozen version shares what the builder did not change since: after a
// freeze, one change copies one chunk, one page and one bucket, not the map.
func TestFreezeSharesUnchangedPages(t *testing.T) {
	b := New[uint32, int](1 << 16)
	for k := range uint32(1 << 16) {
		b.Set(mix(k), k, int(k))
	}
	v1 := b.Freeze()
	b.Set(mix(7), 7, -1)
	v2 := b.Freeze()
	chunks, pages, total := 0, 0, 0
	for i := range v1.chunks {
		if v1.chunks[i] == v2.chunks[i] {
			chunks++
		}
		for j := range v1.chunks[i].pages {
			total++
			if v1.chunks[i].pages[j] == v2.chunks[i].pages[j] {
				pages++
			}
		}
	}
	if chunks != len(v1.chunks)-1 || pages != total-1 {
		t.Fatalf("%d of %d chunks and %d of %d pages shared after one change, want all but one", chunks, len(v1.chunks), pages, total)
	}
	if v, _ := v1.Get(mix(7), 7); v != 7 {
		t.Fatalf("the older version sees the newer value %d", v)
	}
}

func FuzzOps(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	f.Add(randomOps(r, 50, 600))
	f.Add(randomOps(r, 500, 600))
	f.Add([]byte{7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		run(t, 64, mix, ops)
		run(t, 64, func(k uint32) uint64 { return uint64(k % 3) }, ops)
	})
}

// BenchmarkGet is a lookup in a map of 1 M keys, beside a Go map of the
// same keys.
func BenchmarkGet(b *testing.B) {
	const n = 1 << 20
	bld := New[uint32, int](n)
	gm := make(map[uint32]int, n)
	for k := range uint32(n) {
		bld.Set(mix(k), k, int(k))
		gm[k] = int(k)
	}
	m := bld.Freeze()
	keys := make([]uint32, 1<<16)
	r := rand.New(rand.NewPCG(7, 8))
	for i := range keys {
		keys[i] = uint32(r.IntN(n))
	}
	b.Run("cowmap", func(b *testing.B) {
		s := 0
		for i := 0; b.Loop(); i++ {
			k := keys[i&(len(keys)-1)]
			v, _ := m.Get(mix(k), k)
			s += v
		}
		_ = s
	})
	b.Run("gomap", func(b *testing.B) {
		s := 0
		for i := 0; b.Loop(); i++ {
			s += gm[keys[i&(len(keys)-1)]]
		}
		_ = s
	})
}

// BenchmarkPublish is one version of a 1 M key map with 4096 keys changed.
func BenchmarkPublish(b *testing.B) {
	const n = 1 << 20
	bld := New[uint32, int](n)
	for k := range uint32(n) {
		bld.Set(mix(k), k, int(k))
	}
	bld.Freeze()
	r := rand.New(rand.NewPCG(9, 10))
	b.ReportAllocs()
	for b.Loop() {
		for range 4096 {
			k := uint32(r.IntN(n))
			bld.Set(mix(k), k, 1)
		}
		bld.Freeze()
	}
}
