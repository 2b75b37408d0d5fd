package hostmerge

import (
	"encoding/binary"
	"testing"

	"github.com/axiomhq/hyperloglog"
)

// sketchPair is what distinct replaced: a sparse sketch per half from the
// start, the halves merged into a scratch sketch to count.
type sketchPair [2]*hyperloglog.Sketch

func newSketchPair() sketchPair {
	var p sketchPair
	for i := range p {
		p[i], _ = hyperloglog.NewSketch(hllPrec, true)
	}
	return p
}

func (p *sketchPair) rotate() {
	p[0], p[1] = p[1], p[0]
	p[0].Reset()
}

func (p *sketchPair) count() uint64 {
	u, _ := hyperloglog.NewSketch(hllPrec, true)
	_ = u.Merge(p[0])
	_ = u.Merge(p[1])
	return u.Estimate()
}

// checkDistinct replays ops (two bytes each: insert a hash out of a pool,
// or rotate) on a distinct and on a sketch pair and compares their counts
// after every op. The pool is wide enough to cross smallSet and the sparse
// sketches' switch to dense registers.
func checkDistinct(t *testing.T, ops []byte) {
	t.Helper()
	var d distinct
	ref := newSketchPair()
	for i := 0; i+1 < len(ops); i += 2 {
		op := binary.LittleEndian.Uint16(ops[i:])
		if op%61 == 0 {
			d.rotate()
			ref.rotate()
		} else {
			// A 64-bit mix of a small pool: repeats happen, hashes
			// spread over all bits as the merger's do.
			x := (uint64(op%1500) + 1) * 0x9e3779b97f4a7c15
			x ^= x >> 29
			d.insert(x)
			ref[0].InsertHash(x)
		}
		if got, want := d.count(), ref.count(); got != want {
			t.Fatalf("op %d (%d): distinct counts %d, the sketches %d", i/2, op, got, want)
		}
	}
}

func TestDistinctAsSketches(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		// Few ops between rotations and many: hosts with a handful of
		// remotes, and hosts with thousands.
		n := 200 + int(seed%4)*2000
		ops := make([]byte, 2*n)
		x := seed
		for i := 0; i < n; i++ {
			x = x*6364136223846793005 + 1442695040888963407
			v := uint16(x >> 48)
			if seed%3 == 0 {
				v %= 9 // a handful of remotes, rotations often
			}
			binary.LittleEndian.PutUint16(ops[2*i:], v)
		}
		checkDistinct(t, ops)
	}
}

// A flood source's single remote costs its host no sketch.
func TestDistinctSmallNoSketch(t *testing.T) {
	var d distinct
	for i := range smallSet {
		d.insert(uint64(i+1) * 0x9e3779b97f4a7c15)
		d.insert(uint64(i+1) * 0x9e3779b97f4a7c15)
	}
	if d.half[0].sk != nil || d.count() != smallSet {
		t.Fatalf("%d hashes: sketch %v, count %d", smallSet, d.half[0].sk != nil, d.count())
	}
	d.insert(99)
	if d.half[0].sk == nil || d.count() != smallSet+1 {
		t.Fatalf("%d hashes: sketch %v, count %d", smallSet+1, d.half[0].sk != nil, d.count())
	}
	if a := testing.AllocsPerRun(100, func() {
		var e distinct
		e.insert(1)
		e.rotate()
		e.insert(2)
		_ = e.count()
	}); a != 0 {
		t.Fatalf("a small host allocates %v times", a)
	}
}

func FuzzDistinct(f *testing.F) {
	f.Add([]byte{1, 0, 2, 0, 3, 0, 61, 0, 4, 0})
	f.Add([]byte{1, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 0, 0, 7, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 8192 {
			ops = ops[:8192]
		}
		checkDistinct(t, ops)
	})
}
