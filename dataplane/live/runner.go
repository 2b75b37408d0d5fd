package live

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	Late      uint64 // ticks at which a worker had not handed its host delta over in time
	// The kernel's AF_XDP socket counters (XDP_STATISTICS), summed over the
	// sockets: frames dropped on the way to a worker (CPU starvation shows here).
	XSKRxDropped, XSKRxRingFull, XSKFillEmpty uint64
	// Control-path failures, each also logged (at most once per
	// errorLogEvery for each kind) with its cause.
	HeartbeatErrors uint64 // heartbeat writes that failed: the kernel fails open once it is stale
	BypassErrors    uint64 // bypass entries not written (the flow stays in userspace)
	BanErrors       uint64 // bans not written
	RecordErrors    uint64 // decision records not written
	ReconcileErrors uint64 // expired-ban clean-ups that failed
	FillErrors      uint64 // frames the fill ring did not take (kept for the next fill)
	KickErrors      uint64 // transmit kicks the kernel refused
}

// decision is a flow whose label just became final, copied off the packet path.
type decision struct {
	flow  shard.Flow
	host  classifier.HostFeatures
	outer shard.Outer
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
	// Socket counters, added once per batch; read by the control loop.
	rx, tx, full, kickErrs atomic.Uint64
}

// Runner is a running dataplane.
type Runner struct {
	cfg       Config
	objs      *bpf.Objects
	links     []link.Link
	ports     []*net.Interface
	workers   []*qworker
	engine    *shard.Engine
	decisions chan decision
	stopping  atomic.Bool
	wg        sync.WaitGroup
	out       *bufio.Writer
	enc       *json.Encoder
	mu        sync.Mutex // guards stats
	stats     Stats
	lost      atomic.Uint64
	harness   Harness    // a benchmark mode (StartHarness); zero in service
	affinity  chan error // workers that could not be pinned to their CPU, for the control loop to log
	errs      errorLog
}

// ErrNoInterface wraps a missing port.
var ErrNoInterface = errors.New("no such network interface")

// Start loads the XDP program, attaches it, opens the sockets and starts
// the workers, the merger and the control loop.
func Start(cfg Config) (*Runner, error) { return startRunner(cfg, Harness{}) }

// Harness is a mode of the veth benchmark harness (bench/veth), never of a
// service: the same sockets and loop with part of the path taken out, as
// the baselines the figures are ratios to.
type Harness struct {
	// Null forwards every frame without classifying it: the null AF_XDP
	// forwarder.
	Null bool
	// NoBypass keeps decided flows in userspace: the cost of the path
	// without the kernel's bypass.
	NoBypass bool
}

// StartHarness is Start in a benchmark mode.
func StartHarness(cfg Config, h Harness) (*Runner, error) { return startRunner(cfg, h) }

func startRunner(cfg Config, h Harness) (*Runner, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, harness: h, decisions: make(chan decision, 4096)}
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
	r.engine = shard.NewEngine(shard.EngineConfig{Workers: queues, Worker: shard.Config{Flows: cfg.Flows, Model: cfg.Model}})
	for q, w := range r.engine.Workers() {
		qw := &qworker{id: q, w: w, descs: make([]unix.XDPDesc, rxBatch), frames: make([][]byte, rxBatch), times: make([]int64, rxBatch), verdicts: make([]shard.Verdict, rxBatch)}
		qw.w.Decided = func(f *shard.Flow, h *classifier.HostFeatures) {
			select {
			case r.decisions <- decision{flow: *f, host: *h, outer: outerOf(qw.w, f)}:
			default:
				r.lost.Add(1)
			}
		}
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
	r.affinity = make(chan error, len(r.workers))
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

// loop is one queue's worker: locked to its thread, pinned to a CPU. It
// serves the engine's ticks (Poll) between rx batches.
func (r *Runner) loop(q *qworker) {
	defer r.wg.Done()
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(q.id % runtime.NumCPU())
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		r.affinity <- fmt.Errorf("worker %d: pin to CPU %d: %w", q.id, q.id%runtime.NumCPU(), err)
	}
	bridge := len(q.socks) == 2
	for !r.stopping.Load() {
		q.w.Poll()
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
			if !r.harness.Null {
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
				if err := out.Kick(); err != nil {
					q.kickErrs.Add(1)
				}
			}
		}
		if got == 0 {
			for _, s := range q.socks {
				s.Reap()
				s.Fill(nil) // frames the fill ring had no room for
			}
			unix.Poll(q.pfds, 10)
		}
		var rx, tx, full uint64
		for _, s := range q.socks {
			rx, tx, full = rx+s.Received, tx+s.Sent, full+s.TxFull
			s.Received, s.Sent, s.TxFull = 0, 0, 0
		}
		if rx|tx|full != 0 {
			q.rx.Add(rx)
			q.tx.Add(tx)
			q.full.Add(full)
		}
	}
}

// control runs the engine's clock on wall time: every tick it beats the
// heartbeat, ticks the engine (sweep, merge, publish), publishes the
// counters and flushes the records; between ticks it applies decisions.
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
			if err := r.objs.Beat(); err != nil {
				// Loud: the kernel fails open once the heartbeat is stale.
				r.count(func(s *Stats) { s.HeartbeatErrors++ })
				r.errs.log(r.cfg.Log, "heartbeat", fmt.Errorf("%w (the kernel forwards everything itself after --fail-open %v)", err, r.cfg.FailOpen))
			}
			r.tick(now)
			if now.Sub(lastExpire) > time.Minute {
				if _, err := r.reconcileBans(); err != nil {
					r.count(func(s *Stats) { s.ReconcileErrors++ })
					r.errs.log(r.cfg.Log, "reconcile bans", err)
				}
				lastExpire = now
			}
			if err := r.out.Flush(); err != nil {
				r.count(func(s *Stats) { s.RecordErrors++ })
				r.errs.log(r.cfg.Log, "records", err)
			}
		}
	}
}

// tickWait is how long a tick waits for a busy worker's hand-over; one that
// misses it hands over at the next tick.
const tickWait = 50 * time.Millisecond

// tick ticks the engine at wall time now and publishes the counters.
func (r *Runner) tick(now time.Time) {
	got := r.engine.TickAsync(now.UnixNano(), tickWait)
	select {
	case err := <-r.affinity:
		r.errs.log(r.cfg.Log, "affinity", err)
	default:
	}
	ws, fs := r.engine.Stats()
	var rx, tx, full, kick uint64
	for _, q := range r.workers {
		rx, tx, full, kick = rx+q.rx.Load(), tx+q.tx.Load(), full+q.full.Load(), kick+q.kickErrs.Load()
	}
	k, err := r.objs.Counters()
	if err != nil {
		r.errs.log(r.cfg.Log, "kernel counters", err)
	}
	var xs unix.XDPStatistics
	for _, q := range r.workers {
		for _, s := range q.socks {
			st, err := s.Statistics()
			if err != nil {
				r.errs.log(r.cfg.Log, "socket statistics", err)
				continue
			}
			xs.Rx_dropped += st.Rx_dropped
			xs.Rx_ring_full += st.Rx_ring_full
			xs.Rx_fill_ring_empty_descs += st.Rx_fill_ring_empty_descs
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Worker, r.stats.Flows = ws, fs
	r.stats.RxFrames, r.stats.TxFrames, r.stats.TxFull, r.stats.KickErrors = rx, tx, full, kick
	if got < len(r.workers) {
		r.stats.Late++
	}
	if err == nil {
		r.stats.Kernel = k
	}
	r.stats.Hosts = r.engine.Merger().Hosts()
	r.stats.Lost = r.lost.Load()
	r.stats.XSKRxDropped, r.stats.XSKRxRingFull, r.stats.XSKFillEmpty = xs.Rx_dropped, xs.Rx_ring_full, xs.Rx_fill_ring_empty_descs
}

// errorLogEvery bounds how often one kind of control-path failure is logged.
const errorLogEvery = 10 * time.Second

// errorLog logs each kind of failure at most once per errorLogEvery, with
// its cause and how many happened since the last line; it keeps the first
// error for Stop. Only the control goroutine and Stop use it.
type errorLog struct {
	last   map[string]time.Time
	missed map[string]int
	first  error
}

func (e *errorLog) log(w io.Writer, what string, err error) {
	if e.first == nil {
		e.first = fmt.Errorf("%s: %w", what, err)
	}
	if e.last == nil {
		e.last, e.missed = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if t, ok := e.last[what]; ok && now.Sub(t) < errorLogEvery {
		e.missed[what]++
		return
	}
	more := ""
	if n := e.missed[what]; n > 0 {
		more = fmt.Sprintf(" (and %d more since the last report)", n)
	}
	fmt.Fprintf(w, "swarmguard: %s: %v%s\n", what, err, more)
	e.last[what], e.missed[what] = now, 0
}

// Stats returns a copy of the counters as of the last merge tick.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Stop stops the workers, applies the decisions still queued, detaches
// the program and closes the sockets. The pinned ban map stays. It returns
// the first error of the run's control path or of the shutdown.
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
		if err := r.out.Flush(); err != nil {
			r.errs.log(r.cfg.Log, "records", err)
		}
	}
	if err := r.close(); err != nil && r.errs.first == nil {
		r.errs.first = err
	}
	return r.errs.first
}

// close detaches the program and closes sockets and maps; it returns the
// first error.
func (r *Runner) close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for _, l := range r.links {
		keep(detach(l))
	}
	r.links = nil
	for _, q := range r.workers {
		for _, s := range q.socks {
			keep(s.Close())
		}
	}
	if r.objs != nil {
		keep(r.objs.Close())
	}
	return first
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
			if err := r.objs.Unban(a); err != nil {
				return n, fmt.Errorf("remove expired ban: %w", err)
			}
			n++
		}
	}
	return n, nil
}

// outerOf is a flow's tunnel endpoints, or none.
func outerOf(w *shard.Worker, f *shard.Flow) shard.Outer {
	o, _ := w.OuterOf(f)
	return o
}
