package shard

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/hostmerge"
	"github.com/swarmguard/swarmguard/shard/packet"
)

type frame struct {
	data []byte
	link packet.LinkType
	ts   int64
}

// loadFrames holds every packet of the corpus in memory, each file's clock
// rebased so that the files follow one another one hour apart.
func loadFrames(b testing.TB) []frame {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "ndpi", "pcap", "*"))
	var out []frame
	base := int64(0)
	for _, f := range files {
		r := openCapture(b, f)
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
		base += int64(time.Hour)
	}
	// Lay the frames out as an AF_XDP UMEM holds them: 2 KiB slots in one
	// region, used in ring order (not scattered over the heap).
	umem := make([]byte, len(out)*2048)
	for i := range out {
		slot := umem[i*2048 : i*2048+2048]
		n := copy(slot, out[i].data)
		out[i].data = slot[:n]
	}
	return out
}

// warm runs every frame through a worker once and publishes the host
// snapshot it built, as the live merger would have.
func warm(frames []frame) (*Worker, *hostmerge.Merger) {
	model := classifier.DefaultModel()
	w := NewWorker(Config{Model: model, Flows: TableConfig{Capacity: 1 << 16}})
	m := hostmerge.NewMerger(hostmerge.Config{Model: model})
	for _, f := range frames {
		w.Packet(f.link, f.data, f.ts)
	}
	m.Merge(frames[len(frames)-1].ts, w.Delta())
	w.snap = m.Snapshot()
	return w, m
}

// decideAll makes every flow of w's table final, as if each were decided.
func decideAll(w *Worker) {
	w.Table().Range(func(f *Flow) {
		f.Flags |= classifier.FlagFinal
		f.Flags &^= classifier.FlagHarvest
		f.More |= classifier.MoreConfirmed
	})
}

// BenchmarkDecidedFlowPackets measures the path almost every packet takes:
// decode, symmetric key, flow lookup, cached final label. Every flow of the
// corpus is made final first.
func BenchmarkDecidedFlowPackets(b *testing.B) { benchDecided(b, loadFrames(b)) }

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

// umemFrames is the live path's default UMEM (xsk.Options): 8192 slots of 2 KiB.
const umemFrames = 8192

// BenchmarkDecidedFlowUMEM is BenchmarkDecidedFlowPackets with the frames
// where the live path has them: in a UMEM of the default size (16 MiB) that
// the device has just written. The corpus passes through it one window of
// 8192 frames at a time; the copy into the UMEM, the device's work, is
// outside the timer. BenchmarkDecidedFlowPackets reads the frames from a
// 100 MB region instead, which the hardware prefetcher streams through.
// That this one is no faster says a frame beyond L2 costs the same trip
// either way, and the live path pays it as well (BenchmarkStageDecodeHot).
func BenchmarkDecidedFlowUMEM(b *testing.B) {
	frames := loadFrames(b)
	w, _ := warm(frames)
	decideAll(w)
	umem := make([]byte, umemFrames*2048)
	window := make([]frame, umemFrames)
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for done, j := 0, 0; done < b.N; {
		b.StopTimer()
		n := min(umemFrames, b.N-done, len(frames)-j)
		for i := 0; i < n; i++ {
			f := frames[j+i]
			slot := umem[i*2048 : i*2048+2048]
			f.data = slot[:copy(slot, f.data)]
			window[i] = f
		}
		b.StartTimer()
		for i := 0; i < n; i++ {
			f := &window[i]
			w.Packet(f.link, f.data, f.ts)
		}
		done += n
		if j += n; j == len(frames) {
			j = 0
		}
	}
}

// bursts feeds b.N frames through w.Burst in the live loop's batches of
// MaxBurst frames, each batch of one link type as a live socket's are (the
// corpus mixes them). shift is called each time the corpus starts over
// (pass 1, 2, ...) and its result is added to every frame's time.
func bursts(b *testing.B, w *Worker, frames []frame, shift func(pass int) int64) {
	var (
		batch [MaxBurst][]byte
		times [MaxBurst]int64
		out   [MaxBurst]Verdict
	)
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	var dt int64
	for done, j, pass := 0, 0, 0; done < b.N; {
		if j == 0 {
			pass++
			dt = shift(pass)
		}
		link, n := frames[j].link, 0
		for m := min(MaxBurst, b.N-done, len(frames)-j); n < m && frames[j+n].link == link; n++ {
			batch[n], times[n] = frames[j+n].data, frames[j+n].ts+dt
		}
		w.Burst(link, batch[:n], times[:n], out[:n])
		done += n
		if j += n; j == len(frames) {
			j = 0
		}
	}
}

// BenchmarkDecidedFlowBurst is BenchmarkDecidedFlowPackets through
// Worker.Burst.
func BenchmarkDecidedFlowBurst(b *testing.B) {
	frames := loadFrames(b)
	w, _ := warm(frames)
	decideAll(w)
	bursts(b, w, frames, func(int) int64 { return 0 })
}

// BenchmarkAllPacketsBurst is BenchmarkAllPackets through Worker.Burst: what
// the live loop pays when flows are new (the fast path's parse is wasted on
// packets of undecided flows, which then take the full path).
func BenchmarkAllPacketsBurst(b *testing.B) {
	frames := loadFrames(b)
	w, _ := warm(frames)
	bursts(b, w, frames, func(pass int) int64 {
		w.Delta().Reset() // as the merger does every tick
		return int64(pass+1) * int64(24*time.Hour)
	})
}

// BenchmarkRedecideScan measures a worker's re-decision pass when a host has
// turned p2p: one whole pass over its table (1<<18 flows, all final normal,
// none of the turned host's). Live, the pass runs in steps of
// redecideChunk buckets between rx batches.
func BenchmarkRedecideScan(b *testing.B) {
	const n = 1 << 18
	w := NewWorker(Config{Model: classifier.DefaultModel(), Flows: TableConfig{Capacity: n}})
	for i := range n {
		m := packet.Meta{Src: packet.Addr16{0, 0xffff0a000000 | uint64(i>>8)}, Dst: packet.Addr16{0, 0xffff0b000000 | uint64(i&0xff)}, SrcPort: uint16(1024 + i), DstPort: 443, Proto: 6}
		var k Key
		k.Set(&m)
		f, _ := w.table.Lookup(&k, k.Hash(), 0)
		f.Label = classifier.Normal
		f.Flags |= classifier.FlagFinal
	}
	turned := hostmerge.Host{Addr: netip.MustParseAddr("192.0.2.1")}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w.turn(turned)
		w.redecideAll()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(w.table.Stats.Active), "ns/flow")
}

// encapFrames is frames with every Ethernet frame put inside wrap.
func encapFrames(frames []frame, wrap func([]byte) []byte) []frame {
	out := make([]frame, len(frames))
	for i, f := range frames {
		out[i] = f
		if f.link == packet.LinkEthernet && len(f.data) >= 14 {
			out[i].data = wrap(f.data)
		}
	}
	return out
}

// pppoeFrame puts an Ethernet frame's IP packet in PPPoE session 0x1234.
func pppoeFrame(f []byte) []byte {
	ppp := uint16(0x0021)
	if binary.BigEndian.Uint16(f[12:14]) == 0x86dd {
		ppp = 0x0057
	}
	b := append([]byte(nil), f[:12]...)
	b = append(b, 0x88, 0x64, 0x11, 0, 0x12, 0x34)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f)-14+2))
	b = binary.BigEndian.AppendUint16(b, ppp)
	return append(b, f[14:]...)
}

// vxlanFrame puts an Ethernet frame in VXLAN VNI 5000 between two VTEPs.
func vxlanFrame(f []byte) []byte {
	b := make([]byte, 14+20+8+8, 14+20+8+8+len(f))
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+8+len(f)))
	copy(ip[12:], []byte{10, 200, 0, 1, 10, 200, 0, 2})
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 50000)
	binary.BigEndian.PutUint16(udp[2:], 4789)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+8+len(f)))
	vx := udp[8:]
	vx[0] = 0x08
	binary.BigEndian.PutUint32(vx[4:], 5000<<8)
	return append(b, f...)
}

// benchDecided replays frames, every flow of which is made final first,
// within the flows' lifetimes (the same timestamps again).
func benchDecided(b *testing.B, frames []frame) {
	w, _ := warm(frames)
	decideAll(w)
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

// BenchmarkDecidedFlowPPPoE and BenchmarkDecidedFlowVXLAN are the decided
// path for the corpus inside PPPoE and VXLAN: the full decoder (the fast
// path takes bare frames only), then the same lookup and cached label.
func BenchmarkDecidedFlowPPPoE(b *testing.B) { benchDecided(b, encapFrames(loadFrames(b), pppoeFrame)) }
func BenchmarkDecidedFlowVXLAN(b *testing.B) { benchDecided(b, encapFrames(loadFrames(b), vxlanFrame)) }
