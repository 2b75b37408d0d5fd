package hostmerge

import (
	"net/netip"
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
			x.del(hashOf(h.addr), h)
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
