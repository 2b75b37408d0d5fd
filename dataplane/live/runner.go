package live

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane/xsk"
	"github.com/swarmguard/swarmguard/hostmerge"
	"github.com/swarmguard/swarmguard/shard"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// Stats are the runner's counters for every stage (kept for the metrics
// endpoint). Worker counters are published at each merge tick.
type Stats struct {
	Worker    shard.Stats
	Flows     shard.TableStats
	RxFrames  uint64 // frames the sockets received
	TxFrames  uint64 // frames forwarded by the workers
	TxFull    uint64 // frames not forwarded: tx ring or frames exhausted
	Kernel    [bpf.NumCounters]uint64
	Hosts     int
	Bans      uint64 // bans written
	Bypassed  uint64 // bypass entries written
	Decisions uint64
	Lost      uint64 // decisions dropped because the queue was full
}

// decision is a flow whose label just became final, copied off the packet path.
type decision struct {
	flow shard.Flow
	host classifier.HostFeatures
}

// rxBatch is the most descriptors one receive takes from an rx ring; the
// batch then goes through Worker.Burst together.
const rxBatch = 64

// qworker is the worker of one queue: its sockets (one per port) and engine.
type qworker struct {
	id    int
	w     *shard.Worker
	socks []*xsk.Socket
	descs []unix.XDPDesc
	// One rx batch on its way through Worker.Burst.
	frames   [][]byte
	times    []int64
	verdicts []shard.Verdict
	refill   []uint64
	pfds     []unix.PollFd
	// Hand-over of host deltas: the merger bumps req; the worker swaps its
	// delta for the spare and sends the full one with a copy of its stats.
	req     atomic.Uint64
	seen    uint64
	toMerge chan handover
	spare   chan *hostmerge.Delta
}

type handover struct {
	delta *hostmerge.Delta
	stats shard.Stats
	flows shard.TableStats
	rx    uint64
	tx    uint64
	full  uint64
}

// Runner is a running dataplane.
type Runner struct {
	cfg       Config
	objs      *bpf.Objects
	links     []link.Link
	ports     []*net.Interface
	workers   []*qworker
	merger    *hostmerge.Merger
	decisions chan decision
	stopping  atomic.Bool
	wg        sync.WaitGroup
	out       *bufio.Writer
	enc       *json.Encoder
	mu        sync.Mutex // guards stats
	stats     Stats
	lost      atomic.Uint64
}

// ErrNoInterface wraps a missing port.
var ErrNoInterface = errors.New("no such network interface")

// Start loads the XDP program, attaches it, opens the sockets and starts
// the workers, the merger and the control loop.
func Start(cfg Config) (*Runner, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, decisions: make(chan decision, 4096)}
	for _, name := range cfg.ports() {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("port %s: %w", name, ErrNoInterface)
		}
		r.ports = append(r.ports, ifi)
	}
	queues := cfg.Queues
	if queues <= 0 {
		queues = 1 << 30
		for _, p := range r.ports {
			queues = min(queues, rxQueues(p.Name))
		}
	}
	if queues*len(r.ports) > bpf.MaxSockets {
		return nil, fmt.Errorf("%d queues on %d ports: at most %d sockets", queues, len(r.ports), bpf.MaxSockets)
	}
	objs, err := bpf.Load(bpf.Options{PinPath: cfg.PinPath})
	if err != nil {
		return nil, err
	}
	r.objs = objs
	fail := func(err error) (*Runner, error) {
		r.close()
		return nil, err
	}
	mode := bpf.Bridge
	if cfg.Monitor != "" {
		mode = bpf.Monitor
	}
	if err := objs.Configure(mode, 1, cfg.FailOpen); err != nil {
		return fail(err)
	}
	if err := objs.Beat(); err != nil {
		return fail(err)
	}
	// A non-zero epoch lets decided flows skip ban lookups until bans change.
	if err := objs.TouchBans(); err != nil {
		return fail(err)
	}
	if n, err := r.reconcileBans(); err != nil {
		return fail(err)
	} else if n > 0 {
		fmt.Fprintf(cfg.Log, "swarmguard: removed %d expired bans left by a previous run\n", n)
	}
	for i, p := range r.ports {
		if err := objs.SetPortBase(p.Index, i*(bpf.MaxSockets/2)); err != nil {
			return fail(err)
		}
		if len(r.ports) == 2 {
			if err := objs.SetPeerPort(p.Index, r.ports[1-i].Index); err != nil {
				return fail(err)
			}
		}
	}
	r.merger = hostmerge.NewMerger(hostmerge.Config{Model: cfg.Model})
	for q := 0; q < queues; q++ {
		qw := &qworker{id: q, descs: make([]unix.XDPDesc, rxBatch), frames: make([][]byte, rxBatch), times: make([]int64, rxBatch), verdicts: make([]shard.Verdict, rxBatch), toMerge: make(chan handover, 1), spare: make(chan *hostmerge.Delta, 1)}
		qw.w = shard.NewWorker(shard.Config{Flows: cfg.Flows, Model: cfg.Model})
		qw.w.SetSnapshot(r.merger.Snapshot())
		qw.w.Decided = func(f *shard.Flow, h *classifier.HostFeatures) {
			select {
			case r.decisions <- decision{flow: *f, host: *h}:
			default:
				r.lost.Add(1)
			}
		}
		qw.spare <- hostmerge.NewDelta(0)
		for i, p := range r.ports {
			s, err := xsk.Open(p.Index, q, cfg.Socket)
			if err != nil {
				return fail(fmt.Errorf("port %s queue %d: %w", p.Name, q, err))
			}
			qw.socks = append(qw.socks, s)
			qw.pfds = append(qw.pfds, unix.PollFd{Fd: int32(s.FD()), Events: unix.POLLIN})
			if err := objs.SetSocket(i*(bpf.MaxSockets/2)+q, s.FD()); err != nil {
				return fail(err)
			}
		}
		r.workers = append(r.workers, qw)
	}
	for _, p := range r.ports {
		l, err := attach(objs.Program(), p, cfg.PinPath, cfg.Generic, cfg.Log)
		if err != nil {
			return fail(err)
		}
		r.links = append(r.links, l)
	}
	r.out = bufio.NewWriterSize(cfg.Records, 1<<16)
	r.enc = json.NewEncoder(r.out)
	for _, qw := range r.workers {
		r.wg.Add(1)
		go r.loop(qw)
	}
	r.wg.Add(1)
	go r.control()
	return r, nil
}

// loop is one queue's worker: locked to its thread, pinned to a CPU.
func (r *Runner) loop(q *qworker) {
	defer r.wg.Done()
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(q.id % runtime.NumCPU())
	unix.SchedSetaffinity(0, &set)
	bridge := len(q.socks) == 2
	for !r.stopping.Load() {
		if req := q.req.Load(); req != q.seen {
			select {
			case sp := <-q.spare:
				h := handover{delta: q.w.SwapDelta(sp), stats: q.w.Stats, flows: q.w.Table().Stats}
				for _, s := range q.socks {
					h.rx, h.tx, h.full = h.rx+s.Received, h.tx+s.Sent, h.full+s.TxFull
					s.Received, s.Sent, s.TxFull = 0, 0, 0
				}
				q.toMerge <- h
				q.seen = req
			default:
			}
			q.w.SetSnapshot(r.merger.Snapshot())
		}
		got := 0
		for side, s := range q.socks {
			n := s.Receive(q.descs)
			if n == 0 {
				continue
			}
			got += n
			now := time.Now().UnixNano()
			var out *xsk.Socket
			if bridge {
				out = q.socks[1-side]
			}
			frames, times, verdicts := q.frames[:n], q.times[:n], q.verdicts[:n]
			for i, d := range q.descs[:n] {
				frames[i], times[i], verdicts[i] = s.Frame(d.Addr, d.Len), now, shard.Pass
			}
			if !r.cfg.Null {
				q.w.Burst(packet.LinkEthernet, frames, times, verdicts)
			}
			for i, d := range q.descs[:n] {
				frame, v := frames[i], verdicts[i]
				if out != nil && (v == shard.Pass || r.cfg.MonitorOnly) {
					if a, buf, ok := out.TxFrame(); ok {
						copy(buf, frame)
						out.Send(a, d.Len)
					}
				}
				q.refill = append(q.refill, d.Addr)
			}
			s.Fill(q.refill)
			q.refill = q.refill[:0]
			if out != nil {
				out.Kick()
			}
		}
		if got == 0 {
			for _, s := range q.socks {
				s.Reap()
			}
			unix.Poll(q.pfds, 10)
		}
	}
}

// control merges host deltas every tick, beats the heartbeat, applies
// decisions and expires bans.
func (r *Runner) control() {
	defer r.wg.Done()
	tick := time.NewTicker(hostmerge.Tick)
	defer tick.Stop()
	lastExpire := time.Now()
	for {
		select {
		case d := <-r.decisions:
			r.apply(&d)
		case now := <-tick.C:
			if r.stopping.Load() {
				return
			}
			r.objs.Beat()
			r.merge(now)
			if now.Sub(lastExpire) > time.Minute {
				r.reconcileBans()
				lastExpire = now
			}
			r.out.Flush()
		}
	}
}

func (r *Runner) merge(now time.Time) {
	var deltas []*hostmerge.Delta
	var st Stats
	for _, q := range r.workers {
		q.req.Add(1)
	}
	timeout := time.After(50 * time.Millisecond)
	waiting := make([]*qworker, len(r.workers))
	copy(waiting, r.workers)
	var got []*qworker
	for _, q := range waiting {
		select {
		case h := <-q.toMerge:
			deltas = append(deltas, h.delta)
			got = append(got, q)
			addStats(&st.Worker, &h.stats)
			st.Flows.Created += h.flows.Created
			st.Flows.Evicted += h.flows.Evicted
			st.Flows.Expired += h.flows.Expired
			st.Flows.Active += h.flows.Active
			st.RxFrames += h.rx
			st.TxFrames += h.tx
			st.TxFull += h.full
		case <-timeout:
		}
	}
	r.merger.Merge(now.UnixNano(), deltas...)
	for i, q := range got {
		q.spare <- deltas[i]
	}
	k, _ := r.objs.Counters()
	r.mu.Lock()
	r.stats.Worker, r.stats.Flows = st.Worker, st.Flows
	r.stats.RxFrames += st.RxFrames
	r.stats.TxFrames += st.TxFrames
	r.stats.TxFull += st.TxFull
	r.stats.Kernel = k
	r.stats.Hosts = r.merger.Hosts()
	r.stats.Lost = r.lost.Load()
	r.mu.Unlock()
}

func addStats(a, b *shard.Stats) {
	a.Packets += b.Packets
	a.Fragments += b.Fragments
	a.NotIP += b.NotIP
	a.OtherL4 += b.OtherL4
	a.Malformed += b.Malformed
	a.Decided += b.Decided
	a.Inspected += b.Inspected
	a.Dropped += b.Dropped
}

// Stats returns a copy of the counters as of the last merge tick.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Objects gives tests and tools the loaded maps.
func (r *Runner) Objects() *bpf.Objects { return r.objs }

// Stop stops the workers, detaches the program and closes the sockets. The
// pinned ban map stays.
func (r *Runner) Stop() error {
	r.stopping.Store(true)
	r.wg.Wait()
	for {
		select {
		case d := <-r.decisions:
			r.apply(&d)
			continue
		default:
		}
		break
	}
	if r.out != nil {
		r.out.Flush()
	}
	r.close()
	return nil
}

func (r *Runner) close() {
	for _, l := range r.links {
		detach(l)
	}
	r.links = nil
	for _, q := range r.workers {
		for _, s := range q.socks {
			s.Close()
		}
	}
	if r.objs != nil {
		r.objs.Close()
	}
}

// reconcileBans removes expired bans (a previous run's or this run's).
func (r *Runner) reconcileBans() (int, error) {
	bans, err := r.objs.BanList()
	if err != nil {
		return 0, err
	}
	now, n := bpf.Monotonic(), 0
	for a, exp := range bans {
		if exp <= now {
			r.objs.Unban(a)
			n++
		}
	}
	return n, nil
}
