package hostmerge

import (
	"net/netip"
	"sync"
	"testing"
)

// checkIndex replays ops (one byte each: insert or delete one of 256
// addresses) on an index and a Go map, hashing through a narrow mask so
// that runs collide and wrap, and checks every address after every op.
func checkIndex(t *testing.T, ops []byte, hashMask uint64) {
	t.Helper()
	x := newIndex(256)
	want := map[Host]*host{}
	hosts := make([]*host, 256)
	hashOf := func(h Host) uint64 { return hostHash(h) & hashMask }
	for i := range hosts {
		hosts[i] = &host{addr: Host{Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})}}
	}
	for n, op := range ops {
		h := hosts[op]
		if want[h.addr] == nil {
			x.put(hashOf(h.addr), h)
			want[h.addr] = h
		} else {
			x.del(h)
			delete(want, h.addr)
		}
		for _, h := range hosts {
			if got := x.get(hashOf(h.addr), h.addr); got != want[h.addr] {
				t.Fatalf("op %d: %v: got %p, want %p", n, h.addr.Addr, got, want[h.addr])
			}
		}
	}
}

func TestIndexAsMap(t *testing.T) {
	for _, mask := range []uint64{^uint64(0), 0xff, 0x7, 0} {
		ops := make([]byte, 4000)
		r := uint64(mask + 7)
		for i := range ops {
			r = r*6364136223846793005 + 1442695040888963407
			ops[i] = byte(r >> 56)
		}
		checkIndex(t, ops, mask)
	}
}

func FuzzIndex(f *testing.F) {
	f.Add([]byte{1, 2, 3, 1, 4, 2, 5}, uint64(3))
	f.Add([]byte{0, 16, 32, 48, 0, 16}, uint64(0))
	f.Fuzz(func(t *testing.T, ops []byte, mask uint64) {
		if len(ops) > 2000 {
			ops = ops[:2000]
		}
		checkIndex(t, ops, mask)
	})
}

// TestReadersNeverMissAHost: workers look up hosts that stay in the index
// while the merger deletes entries in front of them, so that every
// deletion moves them back past the readers. Each staying host is kept in
// the index as two copies in turn (the new one put before the old one is
// deleted, which moves the new one), so a reader must find it every time
// with its own view, unless it gave up waiting (counted). With the moves
// counter ignored, readers miss hosts in every run.
func TestReadersNeverMissAHost(t *testing.T) {
	const groups, churn, spacing = 16, 6, 32 // runs of 8 that never merge
	x := newIndex(groups * spacing / 2)
	if len(x.slots) != groups*spacing {
		t.Fatalf("%d slots", len(x.slots))
	}
	home := func(g int) uint64 { return uint64(g * spacing) }
	addr := func(g int) Host { return Host{Addr: netip.AddrFrom4([4]byte{10, 1, 0, byte(g)})} }
	copyOf := func(g int) *host {
		h := &host{addr: addr(g)}
		x.put(home(g), h)
		x.publish(h, &View{Flows: float64(g), key: keyOf(h.addr)})
		return h
	}
	staying := make([]*host, groups)
	churning := make([][]*host, groups)
	for g := range groups {
		for c := range churn {
			h := &host{addr: Host{Addr: netip.AddrFrom4([4]byte{10, 2, byte(g), byte(c)})}}
			x.put(home(g), h)
			churning[g] = append(churning[g], h)
		}
		staying[g] = copyOf(g)
	}
	done := make(chan struct{})
	var misses, lookups [2]int
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				g := n % groups
				v := x.view(home(g), addr(g))
				lookups[r]++
				if v == nil {
					misses[r]++
				} else if v.Flows != float64(g) {
					t.Errorf("host %d read host %v's view", g, v.Flows)
					return
				}
			}
		}()
	}
	rng := uint64(7)
	for range 200_000 {
		rng = rng*6364136223846793005 + 1442695040888963407
		g := int(rng >> 33 % groups)
		if rng>>40&1 == 0 {
			old := staying[g]
			staying[g] = copyOf(g)
			x.del(old)
		} else {
			c := churning[g][rng>>44%churn]
			x.del(c)
			x.put(home(g), c)
		}
	}
	close(done)
	wg.Wait()
	if got, gaveUp := misses[0]+misses[1], int(x.gaveUp.Load()); got != gaveUp {
		t.Errorf("%d of %d lookups of staying hosts missed; %d gave up waiting", got, lookups[0]+lookups[1], gaveUp)
	}
	t.Logf("%d lookups, %d gave up", lookups[0]+lookups[1], x.gaveUp.Load())
}

// TestHostKeyRoundTrip: a view's key gives back the host it was made from,
// for IPv4, IPv6 and IPv4-mapped IPv6 addresses, with and without a path,
// and keys of different hosts differ.
func TestHostKeyRoundTrip(t *testing.T) {
	var hosts []Host
	for _, a := range []string{"10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1", "fe80::1", "0.0.0.0", "::"} {
		for _, path := range []uint64{0, 1, 1<<24 - 1} {
			hosts = append(hosts, Host{Addr: netip.MustParseAddr(a), Path: path})
		}
	}
	seen := map[hostKey]Host{}
	for _, h := range hosts {
		k := keyOf(h)
		if got := k.host(); got != h {
			t.Errorf("%v path %d came back as %v path %d", h.Addr, h.Path, got.Addr, got.Path)
		}
		if o, dup := seen[k]; dup {
			t.Errorf("%v and %v share a key", h, o)
		}
		seen[k] = h
	}
}
