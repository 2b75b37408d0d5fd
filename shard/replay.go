package shard

import (
	"errors"
	"io"
	"math"
	"net/netip"
	"sort"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/hostmerge"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// Options configure an offline run.
type Options struct {
	Workers int // flow shards, each with its own worker (default 1)
	Worker  Config
	Hosts   hostmerge.Config
	// Observe, if set, sees every flow as it leaves a table with the host
	// context it was last scored with (the trainer uses it).
	Observe func(pcap string, f *Flow, h *classifier.HostFeatures)
	// NoReasons leaves the reasons out of the records (quiet runs that only
	// count labels need not build them).
	NoReasons bool
	// ObserveHost, if set, sees every host of the final snapshot (v is the
	// snapshot's own view: read it, never keep or write it).
	ObserveHost func(pcap string, h hostmerge.Host, v *hostmerge.View)
	// Reputation are peers other boxes proved (docs/SCALEOUT.md): for the
	// whole run, predicted peers of every host.
	Reputation []netip.Addr
}

// Result is what an offline run of one capture produced.
type Result struct {
	Pcap    string
	Flows   []FlowRecord
	Hosts   []HostRecord
	Stats   Stats
	Packets uint64
	// Err is the read error that ended the capture early (dataplane/pcapsrc: an *pcapsrc.Error),
	// or nil. The records cover every packet before it.
	Err error
}

// Source is a capture replayed with its own clock: frames in time order,
// io.EOF at the end (dataplane/pcapsrc.Reader is one).
type Source interface {
	Next() (frame []byte, link packet.LinkType, ts time.Time, err error)
}

// InPlaceSource is a Source that can also hand out frames where they lie,
// in a read-only mapping of the file (dataplane/pcapsrc.Reader of an
// uncompressed pcap file): no copy per frame. Every access to such a
// frame, on any goroutine, runs inside Guard, which turns a fault on the
// mapping (the file truncated by another process) into an error.
type InPlaceSource interface {
	Source
	InPlace() bool
	NextInPlace() (frame []byte, link packet.LinkType, ts time.Time, err error)
	Guard(fn func()) error
}

// frameRef locates one frame: in place (frame set) or in a worker's batch
// arena.
type frameRef struct {
	frame  []byte
	off, n int
	link   packet.LinkType
	ts     int64
	hdr    hdrRec // the reader's parse of the common frame (parsed set)
	parsed bool
}

// lane is one worker and its records.
type lane struct {
	w     *Worker
	flows []FlowRecord
}

// batch is one lane's frames between two ticks.
type batch struct {
	arena  []byte
	frames []frameRef
}

// segment is every lane's frames between two ticks.
type segment struct {
	batches []batch
	n       int
}

func (s *segment) reset() {
	for i := range s.batches {
		s.batches[i].arena, s.batches[i].frames = s.batches[i].arena[:0], s.batches[i].frames[:0]
	}
	s.n = 0
}

// run feeds lane i's frames of s to its worker.
func (s *segment) run(l *lane, i int) {
	b := &s.batches[i]
	for j := range b.frames {
		fr := &b.frames[j]
		frame := fr.frame
		if frame == nil {
			frame = b.arena[fr.off : fr.off+fr.n]
		}
		if fr.parsed {
			l.w.packetParsed(frame, &fr.hdr, fr.ts)
		} else {
			l.w.Packet(fr.link, frame, fr.ts)
		}
	}
}

// inlineMax is the size of a segment below which the reading goroutine
// runs the lanes itself: waking the lanes' goroutines costs more than a
// few dozen packets (real captures have that many per tick of packet time).
const inlineMax = 512

// segmentMax bounds a segment: a long stretch of packets within one tick
// of packet time (a capture whose clock stood still or stepped back) is
// handed to the lanes in pieces, with no tick between them, instead of
// buffered whole.
const segmentMax = 1 << 14

// Replay runs the frames of src through Workers workers, with packet time
// as the engine's clock; pcap names the records. Packets are dealt to
// workers by the symmetric flow hash, and every tick of packet time all
// workers finish their share before the engine ticks: the result is the
// same for any number of workers.
func Replay(src Source, pcap string, opt Options) (*Result, error) {
	if opt.Worker.Model == nil {
		return nil, errors.New("classify: no model")
	}
	// Lanes on threads of their own fill their tables at once: faulted in
	// up front (TableConfig.Prefault).
	opt.Worker.Flows.Prefault = opt.Worker.Flows.Prefault || opt.Workers > 1
	return replay(NewEngine(EngineConfig{Workers: opt.Workers, Worker: opt.Worker, Hosts: opt.Hosts}), src, pcap, opt)
}

// replay is Replay on an engine made from opt.
func replay(e *Engine, src Source, pcap string, opt Options) (*Result, error) {
	if len(opt.Reputation) > 0 {
		for _, a := range opt.Reputation {
			e.merger.AddReputation(a, math.MaxInt64)
		}
		e.merger.Merge(0)
		for _, w := range e.workers {
			w.snap = e.merger.Snapshot()
		}
	}
	lanes := make([]*lane, len(e.Workers()))
	for i, w := range e.Workers() {
		l := &lane{w: w}
		w.Leave = func(f *Flow, why Reason, h classifier.HostFeatures) {
			if opt.Observe != nil {
				opt.Observe(pcap, f, &h)
			}
			rec := NewFlowRecord(pcap, f, opt.Worker.Model, &h, !opt.NoReasons)
			if o, ok := w.OuterOf(f); ok {
				rec.SetOuter(o)
			}
			l.flows = append(l.flows, rec)
		}
		lanes[i] = l
	}
	res := &Result{Pcap: pcap}
	var (
		meta     packet.Meta
		key      Key
		hdr      hdrRec
		nextTick int64
		last     int64
		tick     = int64(hostmerge.Tick)
	)
	// Several lanes: a pipeline. The reading goroutine deals the frames
	// of the next tick's segment to the lanes while the lanes' goroutines
	// run the previous one; at each tick it waits for them, ticks the
	// engine (which needs every lane stopped) and hands them the segment
	// it filled. Each lane sees its frames in order with the snapshots of
	// the same ticks as a single worker would.
	var segs [2]segment
	for i := range segs {
		segs[i].batches = make([]batch, len(lanes))
	}
	cur := &segs[0]
	var (
		inflight     *segment // run by the lanes' goroutines
		inflightTick int64    // the tick after it
		work         []chan *segment
		done         = make(chan struct{}, len(lanes))
	)
	// Frames in place: the reading goroutine and the lanes read them
	// inside the source's guard, so a file truncated under the replay ends
	// it with an error (the first one any goroutine met) instead of a crash.
	next, guard, inPlace := src.Next, func(fn func()) error { fn(); return nil }, false
	if ip, ok := src.(InPlaceSource); ok && ip.InPlace() {
		next, guard, inPlace = ip.NextInPlace, ip.Guard, true
	}
	laneErrs := make([]error, len(lanes))
	if len(lanes) > 1 {
		work = make([]chan *segment, len(lanes))
		for i, l := range lanes {
			work[i] = make(chan *segment, 1)
			go func() {
				for sg := range work[i] {
					if laneErrs[i] == nil {
						laneErrs[i] = guard(func() { sg.run(l, i) })
					}
					done <- struct{}{}
				}
			}()
		}
		defer func() {
			for _, c := range work {
				close(c)
			}
		}()
	}
	// settle waits for the lanes' segment and runs the tick after it.
	settle := func() {
		if inflight == nil {
			return
		}
		for range lanes {
			<-done
		}
		for _, err := range laneErrs {
			if err != nil && res.Err == nil {
				res.Err = err
			}
		}
		if inflightTick != 0 {
			e.Tick(inflightTick)
		}
		inflight = nil
	}
	// boundary ends cur, followed by tick t (0: no tick).
	boundary := func(t int64) {
		settle()
		if cur.n < inlineMax {
			for i, l := range lanes {
				cur.run(l, i) // on the reading goroutine, inside its guard
			}
			cur.reset()
			if t != 0 {
				e.Tick(t)
			}
			return
		}
		inflight, inflightTick = cur, t
		for _, c := range work {
			c <- cur
		}
		if cur = &segs[0]; cur == inflight {
			cur = &segs[1]
		}
		cur.reset()
	}
	read := func() {
		for res.Err == nil {
			frame, link, ts, err := next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					res.Err = err
				}
				break
			}
			res.Packets++
			now := ts.UnixNano()
			if now < last {
				now = last // capture clocks step back now and then; flows need monotonic time
			}
			last = now
			if nextTick == 0 {
				nextTick = now - now%tick + tick
			}
			if now >= nextTick {
				if len(lanes) == 1 {
					e.Tick(nextTick)
				} else {
					boundary(nextTick)
				}
				nextTick = now - now%tick + tick
			}
			if len(lanes) == 1 {
				lanes[0].w.Packet(link, frame, now) // one lane: no batch, no copy
				continue
			}
			// The lane is the flow's: its key's hash, read from the header
			// bytes for the common frame (parseHdr: the same hash as the full
			// decode's key, FuzzFastPath) and by the full decoder otherwise.
			// The parse goes with the frame: the lane's fast path starts from it.
			i, parsed := 0, false
			if link == packet.LinkEthernet && parseHdr(frame, &hdr) && !hdr.tunnel {
				i, parsed = int(hdr.hash%uint64(len(lanes))), true
			} else if packet.Decode(link, frame, &meta) == packet.OK {
				key.Set(&meta)
				i = int(key.Hash() % uint64(len(lanes)))
			}
			b := &cur.batches[i]
			if inPlace {
				b.frames = append(b.frames, frameRef{frame: frame, link: link, ts: now, hdr: hdr, parsed: parsed})
			} else {
				b.frames = append(b.frames, frameRef{off: len(b.arena), n: len(frame), link: link, ts: now, hdr: hdr, parsed: parsed})
				b.arena = append(b.arena, frame...)
			}
			if cur.n++; cur.n == segmentMax {
				boundary(0)
			}
		}
		if len(lanes) > 1 {
			boundary(0)
		}
	}
	if err := guard(read); err != nil && res.Err == nil {
		res.Err = err
	}
	if len(lanes) > 1 {
		// After a fault on the reading goroutine a segment may still be
		// out; the lanes' guards catch faults of their own.
		settle()
	}
	e.Flush(last + 1)
	for _, l := range lanes {
		res.Flows = append(res.Flows, l.flows...)
		res.Stats.add(&l.w.Stats)
	}
	sortFlows(res.Flows)
	e.Merger().Snapshot().Range(func(h hostmerge.Host, v *hostmerge.View) {
		if opt.ObserveHost != nil {
			opt.ObserveHost(pcap, h, v)
		}
		res.Hosts = append(res.Hosts, NewHostRecord(pcap, h, v, opt.Worker.Model, !opt.NoReasons))
	})
	sort.Slice(res.Hosts, func(i, j int) bool {
		a, b := &res.Hosts[i], &res.Hosts[j]
		return a.Host < b.Host || a.Host == b.Host && a.Path < b.Path
	})
	return res, nil
}

// sortFlows orders records by flow key, then time (a stable order whatever
// the number of workers): an index is sorted and the records moved once.
func sortFlows(fs []FlowRecord) {
	idx := make([]int, len(fs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(i, j int) bool {
		a, b := &fs[idx[i]], &fs[idx[j]]
		if c := a.key.Compare(&b.key); c != 0 {
			return c < 0
		}
		return a.first < b.first
	})
	out := make([]FlowRecord, len(fs))
	for i, j := range idx {
		out[i] = fs[j]
	}
	copy(fs, out)
}
