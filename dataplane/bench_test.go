package dataplane_test

import (
	"errors"
	"io"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
	. "github.com/swarmguard/swarmguard/dataplane"
	"github.com/swarmguard/swarmguard/dataplane/packet"
	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/hostmerge"
	"github.com/swarmguard/swarmguard/shard"
)

type frame struct {
	data []byte
	link packet.LinkType
	ts   int64
}

// loadFrames holds every packet of the corpus in memory, each file's clock
// rebased so that the files follow one another one hour apart.
func loadFrames(b *testing.B) []frame {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "ndpi", "pcap", "*"))
	var out []frame
	base := int64(0)
	for _, f := range files {
		r, err := pcapsrc.Open(f)
		if err != nil {
			b.Fatal(err)
		}
		var first int64 = -1
		for {
			data, link, ts, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if first < 0 {
				first = ts.UnixNano()
			}
			out = append(out, frame{append([]byte(nil), data...), link, base + max(0, ts.UnixNano()-first)})
		}
		r.Close()
		base += int64(time.Hour)
	}
	return out
}

// warm runs every frame through a worker once and publishes the host
// snapshot it built, as the live merger would have.
func warm(frames []frame) (*Worker, *hostmerge.Merger) {
	model := classifier.DefaultModel()
	w := NewWorker(Config{Model: model, Flows: shard.Config{Capacity: 1 << 16}})
	m := hostmerge.NewMerger(hostmerge.Config{Model: model})
	for _, f := range frames {
		w.Packet(f.link, f.data, f.ts)
	}
	m.Merge(frames[len(frames)-1].ts, w.Delta())
	w.SetSnapshot(m.Snapshot())
	return w, m
}

// BenchmarkDecidedFlowPackets measures the path almost every packet takes:
// decode, symmetric key, flow lookup, cached final label. Every flow of the
// corpus is made final first.
func BenchmarkDecidedFlowPackets(b *testing.B) {
	frames := loadFrames(b)
	w, _ := warm(frames)
	w.Table().Range(func(f *shard.Flow) {
		f.Flags |= shard.FlagFinal
		f.Flags &^= shard.FlagHarvest
		f.More |= shard.MoreConfirmed
	})
	// Replay within the flows' lifetimes: the same timestamps again.
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i, j := 0, 0; i < b.N; i, j = i+1, j+1 {
		if j == len(frames) {
			j = 0
		}
		f := &frames[j]
		w.Packet(f.link, f.data, f.ts)
	}
}

// BenchmarkAllPackets replays the whole corpus again and again, one day
// later each pass, so every flow expires and starts over: new flows,
// recognizers, host deltas and scoring are all on the measured path. Host
// deltas are emptied between passes, as the merger does every tick.
func BenchmarkAllPackets(b *testing.B) {
	frames := loadFrames(b)
	w, _ := warm(frames)
	w.Delta().Reset()
	shift := int64(24 * time.Hour)
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(frames)
		if j == 0 {
			shift += int64(24 * time.Hour)
			w.Delta().Reset()
		}
		f := &frames[j]
		w.Packet(f.link, f.data, f.ts+shift)
	}
}
