package shard

import (
	"reflect"
	"testing"

	"github.com/swarmguard/swarmguard/classifier"
)

// Burst has the effect of Packet on each frame in turn: the same verdicts,
// counters and flow table over the whole corpus, on a first pass (flows
// new, decided on the way) and on a second (most flows decided), with
// bursts of uneven sizes.
func TestBurstSameAsPacket(t *testing.T) {
	frames := loadFrames(t)
	model := classifier.DefaultModel()
	one := NewWorker(Config{Model: model, Flows: TableConfig{Capacity: 1 << 12}})
	many := NewWorker(Config{Model: model, Flows: TableConfig{Capacity: 1 << 12}})
	var (
		batch [][]byte
		times []int64
		out   = make([]Verdict, 3*MaxBurst)
	)
	for pass := 0; pass < 2; pass++ {
		size := 1
		for j := 0; j < len(frames); {
			link := frames[j].link
			batch, times = batch[:0], times[:0]
			for ; j < len(frames) && frames[j].link == link && len(batch) < size; j++ {
				batch, times = append(batch, frames[j].data), append(times, frames[j].ts)
			}
			many.Burst(link, batch, times, out)
			for i := range batch {
				if want := one.Packet(link, batch[i], times[i]); out[i] != want {
					t.Fatalf("pass %d, frame %d: Burst %v, Packet %v", pass, j-len(batch)+i, out[i], want)
				}
			}
			size = size*7%(3*MaxBurst) + 1 // 1, 8, 57, 16, ...: across MaxBurst too
		}
	}
	if one.Stats != many.Stats {
		t.Errorf("stats: Packet %+v, Burst %+v", one.Stats, many.Stats)
	}
	if one.Stats.Decided == 0 {
		t.Errorf("no packet of a decided flow: %+v", one.Stats)
	}
	var a, b []Flow
	one.Table().Range(func(f *Flow) { a = append(a, *f) })
	many.Table().Range(func(f *Flow) { b = append(b, *f) })
	if !reflect.DeepEqual(a, b) {
		t.Errorf("flow tables differ (%d and %d flows)", len(a), len(b))
	}
	t.Logf("packets %+v, table %+v", one.Stats, one.Table().Stats)
	if one.Table().Stats != many.Table().Stats {
		t.Errorf("table stats: %+v and %+v", one.Table().Stats, many.Table().Stats)
	}
}
