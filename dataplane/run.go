package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"sort"
	"sync"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane/packet"
	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/hostmerge"
	"github.com/swarmguard/swarmguard/shard"
)

// Options configure an offline run.
type Options struct {
	Workers int // flow shards, each with its own worker (default 1)
	Worker  Config
	Hosts   hostmerge.Config
	// Observe, if set, sees every flow as it leaves a table with the host
	// context it was last scored with (the trainer uses it).
	Observe func(pcap string, f *shard.Flow, h *classifier.HostFeatures)
	// ObserveHost, if set, sees every host of the final snapshot.
	ObserveHost func(pcap string, a netip.Addr, v *hostmerge.View)
}

// Result is what an offline run of one capture produced.
type Result struct {
	Pcap    string
	Flows   []FlowRecord
	Hosts   []HostRecord
	Stats   Stats
	Packets uint64
	// Err is the read error that ended the capture early (an *pcapsrc.Error),
	// or nil. The records cover every packet before it.
	Err error
}

// frameRef locates one frame in a worker's batch arena.
type frameRef struct {
	off, n int
	link   packet.LinkType
	ts     int64
}

type lane struct {
	w      *Worker
	arena  []byte
	frames []frameRef
	flows  []FlowRecord
}

// ClassifyFile runs one capture through Workers workers. Packets are dealt
// to workers by the symmetric flow hash, and every tick of packet time all
// workers finish their share before the host deltas are merged: the result
// is the same for any number of workers.
func ClassifyFile(path string, opt Options) (*Result, error) {
	r, err := pcapsrc.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return Classify(r, filepath.Base(path), opt)
}

// Classify runs the frames of an open reader; pcap names the records.
func Classify(r *pcapsrc.Reader, pcap string, opt Options) (*Result, error) {
	if opt.Workers <= 0 {
		opt.Workers = 1
	}
	if opt.Worker.Model == nil {
		return nil, errors.New("classify: no model")
	}
	if opt.Hosts.Model == nil {
		opt.Hosts.Model = opt.Worker.Model
	}
	merger := hostmerge.NewMerger(opt.Hosts)
	lanes := make([]*lane, opt.Workers)
	deltas := make([]*hostmerge.Delta, opt.Workers)
	for i := range lanes {
		l := &lane{w: NewWorker(opt.Worker)}
		l.w.Leave = func(f *shard.Flow, why shard.Reason, h classifier.HostFeatures) {
			if opt.Observe != nil {
				opt.Observe(pcap, f, &h)
			}
			l.flows = append(l.flows, NewFlowRecord(pcap, f, opt.Worker.Model, &h))
		}
		l.w.SetSnapshot(merger.Snapshot())
		lanes[i] = l
		deltas[i] = l.w.Delta()
	}
	res := &Result{Pcap: pcap}
	var (
		meta     packet.Meta
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
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, fr := range l.frames {
					l.w.Packet(fr.link, l.arena[fr.off:fr.off+fr.n], fr.ts)
				}
				l.frames, l.arena = l.frames[:0], l.arena[:0]
			}()
		}
		wg.Wait()
	}
	tickAt := func(now int64) {
		runLanes()
		for _, l := range lanes {
			l.w.Sweep(now, l.w.Table().Buckets())
		}
		merger.Merge(now, deltas...)
		snap := merger.Snapshot()
		for _, l := range lanes {
			l.w.SetSnapshot(snap)
		}
	}
	for {
		frame, link, ts, err := r.Next()
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
			tickAt(nextTick)
			nextTick = now - now%tick + tick
		}
		i := 0
		if len(lanes) > 1 && packet.Decode(link, frame, &meta) == packet.OK {
			k, _ := shard.MakeKey(&meta)
			i = int(k.Hash() % uint64(len(lanes)))
		}
		l := lanes[i]
		l.frames = append(l.frames, frameRef{off: len(l.arena), n: len(frame), link: link, ts: now})
		l.arena = append(l.arena, frame...)
	}
	runLanes()
	for _, l := range lanes {
		l.w.Flush()
	}
	merger.Merge(last+1, deltas...)
	for _, l := range lanes {
		res.Flows = append(res.Flows, l.flows...)
		s := l.w.Stats
		res.Stats.add(&s)
	}
	sort.Slice(res.Flows, func(i, j int) bool {
		a, b := &res.Flows[i], &res.Flows[j]
		if a.A != b.A {
			return a.A < b.A
		}
		if a.B != b.B {
			return a.B < b.B
		}
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		if a.VLAN != b.VLAN {
			return a.VLAN < b.VLAN
		}
		if a.Packets != b.Packets {
			return a.Packets < b.Packets
		}
		if a.PayloadPackets != b.PayloadPackets {
			return a.PayloadPackets < b.PayloadPackets
		}
		if a.P != b.P {
			return a.P < b.P
		}
		return fmt.Sprint(*a) < fmt.Sprint(*b) // same flow key twice: any total order
	})
	merger.Snapshot().Range(func(a netip.Addr, v *hostmerge.View) {
		if opt.ObserveHost != nil {
			opt.ObserveHost(pcap, a, v)
		}
		res.Hosts = append(res.Hosts, NewHostRecord(pcap, a, v, opt.Worker.Model))
	})
	sort.Slice(res.Hosts, func(i, j int) bool { return res.Hosts[i].Host < res.Hosts[j].Host })
	return res, nil
}

func (s *Stats) add(o *Stats) {
	s.Packets += o.Packets
	s.Fragments += o.Fragments
	s.NotIP += o.NotIP
	s.OtherL4 += o.OtherL4
	s.Malformed += o.Malformed
	s.Decided += o.Decided
	s.Inspected += o.Inspected
	s.Dropped += o.Dropped
}
