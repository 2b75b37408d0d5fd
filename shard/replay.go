package shard

import (
	"errors"
	"io"
	"sort"
	"sync"
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

// frameRef locates one frame in a worker's batch arena.
type frameRef struct {
	off, n int
	link   packet.LinkType
	ts     int64
}

// lane is one worker's share of the frames between two ticks, and its records.
type lane struct {
	w      *Worker
	arena  []byte
	frames []frameRef
	flows  []FlowRecord
}

// Replay runs the frames of src through Workers workers, with packet time
// as the engine's clock; pcap names the records. Packets are dealt to
// workers by the symmetric flow hash, and every tick of packet time all
// workers finish their share before the engine ticks: the result is the
// same for any number of workers.
func Replay(src Source, pcap string, opt Options) (*Result, error) {
	if opt.Worker.Model == nil {
		return nil, errors.New("classify: no model")
	}
	return replay(NewEngine(EngineConfig{Workers: opt.Workers, Worker: opt.Worker, Hosts: opt.Hosts}), src, pcap, opt)
}

// replay is Replay on an engine made from opt.
func replay(e *Engine, src Source, pcap string, opt Options) (*Result, error) {
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
		nextTick int64
		last     int64
		tick     = int64(hostmerge.Tick)
	)
	runLanes := func() {
		var wg sync.WaitGroup
		for _, l := range lanes {
			if len(l.frames) == 0 {
				continue
			}
			wg.Go(func() {
				for _, fr := range l.frames {
					l.w.Packet(fr.link, l.arena[fr.off:fr.off+fr.n], fr.ts)
				}
				l.frames, l.arena = l.frames[:0], l.arena[:0]
			})
		}
		wg.Wait()
	}
	for {
		frame, link, ts, err := src.Next()
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
			runLanes()
			e.Tick(nextTick)
			nextTick = now - now%tick + tick
		}
		if len(lanes) == 1 {
			lanes[0].w.Packet(link, frame, now) // one lane: no batch, no copy
			continue
		}
		i := 0
		if packet.Decode(link, frame, &meta) == packet.OK {
			key.Set(&meta)
			i = int(key.Hash() % uint64(len(lanes)))
		}
		l := lanes[i]
		l.frames = append(l.frames, frameRef{off: len(l.arena), n: len(frame), link: link, ts: now})
		l.arena = append(l.arena, frame...)
	}
	runLanes()
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
