package shard

import (
	"sync/atomic"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/hostmerge"
)

// EngineConfig configures an Engine. Zero fields take the defaults of each
// package.
type EngineConfig struct {
	Workers int // flow shards, one worker each (default 1)
	Worker  Config
	Hosts   hostmerge.Config // Model defaults to Worker.Model
}

// Engine is the whole data path of one box: the workers (each with its
// flow table and host delta), the merger, and the tick that every
// hostmerge.Tick sweeps idle flows, merges the host deltas and publishes
// the host snapshot. One clock drives it: packet time for a capture
// (Replay), wall time live (dataplane/live). The clock calls Tick or
// TickAsync; the goroutine owning a worker calls its Poll between batches.
// Nothing else differs between the two.
type Engine struct {
	workers []*Worker
	merger  *hostmerge.Merger
	deltas  []*hostmerge.Delta // merge scratch: the deltas handed over,
	from    []int              // and the worker of each
	stats   []tickStats        // each worker's counters at its last hand-over
	// mergeTook is the last merge's time, hand-overs not counted.
	mergeTook time.Duration
}

// tickStats is a worker's counters as handed over at a tick.
type tickStats struct {
	worker Stats
	table  TableStats
}

// handover is a worker's share of a tick: its filled host delta and a copy
// of its counters.
type handover struct {
	delta *hostmerge.Delta
	tickStats
}

// tickLink is the lock-free hand-over between a worker and the clock. The
// clock stores the tick's time in req; the worker, at its next Poll, sweeps
// at that time, swaps its delta for the spare and sends the full one. At
// most one delta is in flight per worker, so neither side ever blocks.
type tickLink struct {
	req    atomic.Int64 // time of the newest tick asked for
	seen   int64        // worker side: the tick last served
	done   chan handover
	spare  chan *hostmerge.Delta
	merger *hostmerge.Merger                // whose snapshot Poll reads
	model  atomic.Pointer[classifier.Model] // a new model for Poll to take (SetModel)
}

// NewEngine makes the workers and the merger. The model must be set.
func NewEngine(c EngineConfig) *Engine {
	c.Workers = max(c.Workers, 1)
	if c.Hosts.Model == nil {
		c.Hosts.Model = c.Worker.Model
	}
	e := &Engine{merger: hostmerge.NewMerger(c.Hosts)}
	for range c.Workers {
		w := NewWorker(c.Worker)
		w.link = &tickLink{
			done:   make(chan handover, 1),
			spare:  make(chan *hostmerge.Delta, 1),
			merger: e.merger,
		}
		w.link.spare <- hostmerge.NewDelta(0)
		w.snap = e.merger.Snapshot()
		e.workers = append(e.workers, w)
	}
	e.deltas = make([]*hostmerge.Delta, 0, len(e.workers))
	e.from = make([]int, 0, len(e.workers))
	e.stats = make([]tickStats, len(e.workers))
	return e
}

// Workers are the engine's workers, in shard order.
func (e *Engine) Workers() []*Worker { return e.workers }

// MergeTook is how long the last tick's merge and snapshot publish took,
// without the wait for hand-overs. Only the clock's goroutine may call it.
func (e *Engine) MergeTook() time.Duration { return e.mergeTook }

// Merger is the engine's host merger (its snapshot is the hosts' state).
func (e *Engine) Merger() *hostmerge.Merger { return e.merger }

// Poll serves the tick the clock asked for since the last call, if any:
// sweep the table at the tick's time (idle flows leave, their flow-end
// evidence goes into the delta), then hand the delta over. It
// then reads the newest host snapshot. The goroutine that owns the worker
// calls it between batches; when the merger still holds the worker's last
// delta it leaves the tick for a later call.
func (w *Worker) Poll() {
	l := w.link
	if l == nil {
		return
	}
	if at := l.req.Load(); at != l.seen {
		select {
		case spare := <-l.spare:
			w.table.Sweep(at)
			h := handover{delta: w.delta, tickStats: tickStats{worker: w.Stats, table: w.table.Stats}}
			w.delta = spare
			l.done <- h // holds one, and the last one was taken with the spare
			l.seen = at
		default:
		}
	}
	if m := l.model.Load(); m != nil && m != w.model {
		w.model = m
	}
	w.snap = l.merger.Snapshot()
	if w.snap.Gen != w.snapGen {
		w.snap.TurnedSince(w.snapGen, w.turn)
		w.snapGen = w.snap.Gen
	}
	w.redecideStep(redecideChunk)
}

// Tick runs a tick at time now for a driver that owns every worker at this
// moment (between batches, no worker running): each worker's share runs
// here, in shard order, then the merge, then each worker reads the new
// snapshot.
func (e *Engine) Tick(now int64) {
	e.request(now)
	for _, w := range e.workers {
		w.Poll()
	}
	e.merge(now, 0)
	for _, w := range e.workers {
		w.Poll()
		w.redecideAll()
	}
}

// TickAsync runs a tick at time now while the workers run on their own
// goroutines: each serves it at its next Poll, and the merge waits up to
// wait for them. A worker that misses it hands over at the next tick
// instead (its delta is merged then, nothing is lost). It returns how
// many workers handed over.
func (e *Engine) TickAsync(now int64, wait time.Duration) int {
	e.request(now)
	return e.merge(now, wait)
}

func (e *Engine) request(now int64) {
	for _, w := range e.workers {
		w.link.req.Store(now)
	}
}

// merge folds the hand-overs of the workers, in shard order, and gives the
// emptied deltas back as spares. A worker whose hand-over is not there is
// waited for until wait has passed since the start, then only checked.
func (e *Engine) merge(now int64, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	e.deltas, e.from = e.deltas[:0], e.from[:0]
	for i, w := range e.workers {
		h, ok := receive(w.link.done, deadline, wait > 0)
		if ok {
			e.deltas = append(e.deltas, h.delta)
			e.from = append(e.from, i)
			e.stats[i] = h.tickStats
		}
	}
	began := time.Now()
	e.merger.Merge(now, e.deltas...)
	e.mergeTook = time.Since(began)
	for j, d := range e.deltas {
		e.workers[e.from[j]].link.spare <- d
	}
	return len(e.deltas)
}

// receive takes a hand-over from c, waiting until deadline if wait is set.
func receive(c chan handover, deadline time.Time, wait bool) (handover, bool) {
	select {
	case h := <-c:
		return h, true
	default:
	}
	d := time.Until(deadline)
	if !wait || d <= 0 {
		return handover{}, false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case h := <-c:
		return h, true
	case <-t.C:
		return handover{}, false
	}
}

// Stats sums the workers' counters as of their last hand-over. Only the
// clock's goroutine may call it.
func (e *Engine) Stats() (Stats, TableStats) {
	var s Stats
	var t TableStats
	for i := range e.stats {
		s.add(&e.stats[i].worker)
		t.add(&e.stats[i].table)
	}
	return s, t
}

// SetModel changes the scoring model (a reload): each worker takes it at
// its next Poll, the merger at once. Flows keep their state; labels already
// final stay, the rest are scored with m from then on. Only the clock's
// goroutine may call it.
func (e *Engine) SetModel(m *classifier.Model) {
	e.merger.SetModel(m)
	for _, w := range e.workers {
		if w.link != nil {
			w.link.model.Store(m)
		}
	}
}

// WorkerStats is worker i's counters as of its last hand-over. Only the
// clock's goroutine may call it.
func (e *Engine) WorkerStats(i int) (Stats, TableStats) {
	return e.stats[i].worker, e.stats[i].table
}

// Flush ends a replay at time now: every worker hands every flow left in
// its table to Leave, and a last tick merges their flow-end evidence. The
// caller owns every worker.
func (e *Engine) Flush(now int64) {
	for _, w := range e.workers {
		w.table.Flush()
	}
	e.Tick(now)
}
