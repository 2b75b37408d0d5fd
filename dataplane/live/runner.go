package live

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
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
	// sockets: frames dropped on the way to a worker (CPU starvation shows
	// here), and transmits that found the tx ring empty.
	XSKRxDropped, XSKRxRingFull, XSKFillEmpty, XSKTxEmpty, XSKInvalid uint64
	// Workers are the per-worker counters, in queue order.
	Workers []WorkerStats
	// HostsEvicted and HostsShed count hosts dropped to keep the host state
	// within MaxHosts and new hosts not made over a merge's budget
	// (hostmerge.Merger); HostLookupsGaveUp the workers' host lookups that
	// waited over 10 ms for the merger and read the host as unseen.
	HostsEvicted, HostsShed, HostLookupsGaveUp uint64
	Predicted                                  int                         // peers predicted from discovery answers, within their TTL
	Reputed                                    int                         // peers other boxes proved (AddReputation)
	ByLabel                                    [classifier.Scan + 1]uint64 // final decisions by label
	BansExpired                                uint64                      // bans removed at their expiry
	Snapshot                                   time.Time                   // when the host snapshot was last published
	Heartbeat                                  time.Time                   // the last heartbeat the kernel took
	Started                                    time.Time
	// Tick is how long the last tick took: the wait for the workers'
	// hand-overs (at most 50 ms), the merge and the publish; TickMax the
	// longest so far.
	Tick, TickMax time.Duration
	// Merge is how long the last tick's merge and snapshot publish took
	// (it must stay under the 100 ms tick); MergeMax the longest so far.
	Merge, MergeMax time.Duration
	// FramesUnaccounted is, after Stop, the UMEM frames found nowhere or
	// in two places at once (UMEM accounting: 0 unless frames leaked or
	// traffic was in flight).
	FramesUnaccounted int
	// UserBudget is each CPU's budget of packets per second to the
	// workers, as adapted to what they take (0: no budget).
	UserBudget int
	// Control-path failures, each also logged (at most once per
	// errorLogEvery for each kind) with its cause.
	HeartbeatErrors uint64 // heartbeat writes that failed: the kernel fails open once it is stale
	Withheld        uint64 // heartbeats withheld because a worker or the control loop made no progress
	BypassErrors    uint64 // bypass entries not written (the flow stays in userspace)
	BanErrors       uint64 // bans not written
	RecordErrors    uint64 // decision records not written
	ReconcileErrors uint64 // expired-ban clean-ups that failed
	FillErrors      uint64 // frames the fill ring did not take (kept for the next fill)
	KickErrors      uint64 // transmit kicks the kernel refused
	// Healing (heal): the program attached again, pinned objects pinned again.
	Reattached, Repinned, HealErrors uint64
}

// WorkerStats is one worker: its sockets' frames and its engine's
// counters as of its last hand-over.
type WorkerStats struct {
	Worker, Queue              int // the worker's index and the rx queue it reads
	RxFrames, TxFrames, TxFull uint64
	Engine                     shard.Stats
	Flows                      shard.TableStats
}

// decision is a flow whose label just became final, copied off the packet path.
type decision struct {
	flow  shard.Flow
	host  classifier.HostFeatures
	outer shard.Outer
	audit []AuditFrame // the first frames of a p2p flow, when auditing
}

// rxBatch is the most descriptors one receive takes from an rx ring; the
// batch then goes through Worker.Burst together.
const rxBatch = 64

// qworker is the worker of one queue: its sockets (one per port) and engine.
type qworker struct {
	id    int // the worker's index, also its CPU modulo the CPU count
	queue int // the rx queue it reads (with the queue's other workers)
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
	// loops counts the worker's turns (a batch, or a poll that timed out):
	// the watchdog beats only while every worker makes progress.
	loops atomic.Uint64
	audit *auditRing // recent frames, when auditing
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
	stopped   atomic.Bool
	wg        sync.WaitGroup
	out       *bufio.Writer
	enc       *json.Encoder
	mu        sync.Mutex // guards stats
	stats     Stats
	lost      atomic.Uint64
	harness   Harness    // a benchmark mode (StartHarness); zero in service
	affinity  chan error // workers that could not be pinned to their CPU, for the control loop to log
	errs      errorLog
	beatErrs  errorLog     // the watchdog's own, on its goroutine
	ticked    atomic.Int64 // when the control loop last finished a tick (ns)
	reconf    chan reconf
	budget    int // packets per second per CPU to the workers, as adapted (adaptBudget)
	perQueue  int // workers (sockets per port) on each rx queue
	// nextExpire is the earliest expiry of a ban in the kernel map that the
	// control loop knows of (monotonic ns, 0: none): it removes expired
	// bans then, with their unban events, not only once a minute.
	nextExpire uint64
	ringFull   uint64 // rx ring overflows at the last tick
	// monitorOnly is the policy's MonitorOnly for the workers, which read
	// it per frame; a reload sets it.
	monitorOnly atomic.Bool
	hostGen     uint64 // snapshot generation whose turns were logged
	failOpen    uint64 // kernel fail-open packets already logged
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
	r := &Runner{cfg: cfg, harness: h, decisions: make(chan decision, 4096), reconf: make(chan reconf)}
	r.monitorOnly.Store(cfg.MonitorOnly)
	r.stats.Started = time.Now()
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
	if err := objs.Configure(mode, 1, cfg.FailOpen, cfg.UserPPS); err != nil {
		return fail(err)
	}
	if err := objs.Beat(); err != nil {
		return fail(err)
	}
	// A non-zero epoch lets decided flows skip ban lookups until bans change.
	if err := objs.TouchBans(); err != nil {
		return fail(err)
	}
	if gone, err := r.reconcileBans(); err != nil {
		return fail(err)
	} else if len(gone) > 0 {
		fmt.Fprintf(cfg.Log, "swarmguard: removed %d expired bans left by a previous run\n", len(gone))
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
	if err := r.openSockets(queues); err != nil {
		return fail(err)
	}
	if err := objs.Configure(mode, r.perQueue, cfg.FailOpen, cfg.UserPPS); err != nil {
		return fail(err)
	}
	// The workers run at once from the first packet: their tables are
	// faulted in now, not by TLB shootdowns under traffic.
	flows := cfg.Flows
	flows.Prefault = true
	r.engine = shard.NewEngine(shard.EngineConfig{Workers: len(r.workers), Worker: shard.Config{Flows: flows, Model: cfg.Model},
		Hosts: hostmerge.Config{MaxHosts: cfg.MaxHosts, Local: cfg.Local}})
	for i, w := range r.engine.Workers() {
		qw := r.workers[i]
		qw.w = w
		qw.w.Decided = func(f *shard.Flow, h *classifier.HostFeatures) {
			select {
			case r.decisions <- decision{flow: *f, host: *h, outer: outerOf(qw.w, f), audit: qw.auditOf(f, cfg.Audit)}:
			default:
				r.lost.Add(1)
			}
		}
	}
	for _, p := range r.ports {
		l, err := attach(objs.Program(), p, cfg.PinPath, cfg.Generic, cfg.Log)
		if err != nil {
			return fail(err)
		}
		r.links = append(r.links, l)
	}
	r.affinity = make(chan error, 2*len(r.workers)+2)
	r.out = bufio.NewWriterSize(cfg.Records, 1<<16)
	r.enc = json.NewEncoder(r.out)
	for _, qw := range r.workers {
		r.wg.Add(1)
		go r.loop(qw)
	}
	// The workers hold their threads; the control loop and the watchdog
	// must find a P of their own at once, not after a preemption.
	if n := len(r.workers) + 2; runtime.GOMAXPROCS(0) < n {
		runtime.GOMAXPROCS(n)
	}
	r.ticked.Store(time.Now().UnixNano())
	r.wg.Add(2)
	go r.control()
	go r.watchdog()
	return r, nil
}

// openSockets opens each worker's sockets, one per port, and puts them in
// the XSKMAP: port i's slots start at i*MaxSockets/2, then queue q's
// perQueue workers take slots q*perQueue+j. A queue's first worker owns
// the UMEM (on a bridge both ports' first sockets share it, so frames
// leave the other port uncopied); its other workers join the same queue
// and UMEM (xsk.OpenSibling), and the XDP program spreads the queue's
// flows over them by the flow hash, both directions of a flow to one
// worker. Siblings need the shared UMEM on a bridge: without it frames
// are copied and each queue has one worker, said in one log line.
func (r *Runner) openSockets(queues int) error {
	cfg := r.cfg
	r.perQueue = max(1, cfg.Workers/queues)
	if cfg.Workers == 0 {
		// A CPU is left to the control loop, the watchdog and the kernel's
		// own work: on 2 cores under a flood a second worker made the
		// merge's longest tick 104-184 ms instead of 79-140 (BENCHMARKS.md).
		r.perQueue = max(1, (runtime.NumCPU()-1)/queues)
	}
	if cfg.Workers > 0 && cfg.Workers != r.perQueue*queues {
		fmt.Fprintf(cfg.Log, "swarmguard: %d workers on %d queues: %d per queue, %d in all\n", cfg.Workers, queues, r.perQueue, r.perQueue*queues)
	}
	if queues*r.perQueue*len(r.ports) > bpf.MaxSockets {
		return fmt.Errorf("%d workers on each of %d queues of %d ports: at most %d sockets", r.perQueue, queues, len(r.ports), bpf.MaxSockets)
	}
	slot := func(port, q, j int) int { return port*(bpf.MaxSockets/2) + q*r.perQueue + j }
	add := func(qw *qworker, port int, s *xsk.Socket) error {
		qw.socks = append(qw.socks, s)
		qw.pfds = append(qw.pfds, unix.PollFd{Fd: int32(s.FD()), Events: unix.POLLIN})
		return r.objs.SetSocket(slot(port, qw.queue, qw.id%r.perQueue), s.FD())
	}
	newWorker := func(q int) *qworker {
		qw := &qworker{id: len(r.workers), queue: q, descs: make([]unix.XDPDesc, rxBatch), frames: make([][]byte, rxBatch), times: make([]int64, rxBatch), verdicts: make([]shard.Verdict, rxBatch)}
		if cfg.Audit > 0 {
			qw.audit = newAuditRing()
		}
		r.workers = append(r.workers, qw) // closed by r.close from here on
		return qw
	}
	for q := 0; q < queues; q++ {
		first := newWorker(q)
		for i, p := range r.ports {
			var s *xsk.Socket
			var err error
			if i == 1 {
				// The bridge's other port on the first's UMEM: a frame
				// received on one leaves the other as it is, no copy.
				if s, err = xsk.OpenShared(p.Index, q, first.socks[0]); errors.Is(err, xsk.ErrQueueBusy) {
					return fmt.Errorf("port %s queue %d: %w", p.Name, q, err)
				} else if err != nil {
					fmt.Fprintf(cfg.Log, "swarmguard: port %s queue %d: no shared UMEM (%v): frames are copied between the ports\n", p.Name, q, err)
					s = nil
				}
			}
			if s == nil {
				if s, err = xsk.Open(p.Index, q, cfg.Socket); err != nil {
					return fmt.Errorf("port %s queue %d: %w", p.Name, q, err)
				}
			}
			if err := add(first, i, s); err != nil {
				return err
			}
		}
		if r.perQueue > 1 && len(first.socks) == 2 && !first.socks[1].Shares(first.socks[0]) {
			fmt.Fprintf(cfg.Log, "swarmguard: one worker per queue, as frames are copied between the ports\n")
			r.perQueue = 1
		}
		for j := 1; j < r.perQueue; j++ {
			qw := newWorker(q)
			var peer *xsk.Socket
			for i, p := range r.ports {
				s, err := xsk.OpenSibling(first.socks[i], peer)
				if err != nil {
					if q == 0 && j == 1 {
						// Nothing shares a queue yet: run one worker per queue.
						fmt.Fprintf(cfg.Log, "swarmguard: port %s queue %d: one worker per queue, as a second socket on the queue was refused (%v)\n", p.Name, q, err)
						for _, s := range qw.socks {
							s.Close()
						}
						r.workers, r.perQueue = r.workers[:len(r.workers)-1], 1
						break
					}
					return fmt.Errorf("port %s queue %d: worker %d of the queue: %w", p.Name, q, j, err)
				}
				if err := add(qw, i, s); err != nil {
					return err
				}
				peer = s
			}
		}
	}
	return nil
}

// workerNice is the workers' nice value and controlNice the control
// loop's and the watchdog's: under overload the threads that merge host
// state, apply decisions and beat the heartbeat run before the workers and
// before anything else on the box at the default priority (a traffic
// generator, a shell). Raising a thread needs CAP_SYS_NICE; without it
// they keep the process's priority, and one line says so.
const (
	workerNice  = 5
	controlNice = -10
)

// raise locks the calling goroutine to its thread and gives the thread
// controlNice. The thread ends with the goroutine.
func (r *Runner) raise(who string) {
	runtime.LockOSThread()
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, controlNice); err != nil {
		select {
		case r.affinity <- fmt.Errorf("%s: nice %d (it keeps the process's priority): %w", who, controlNice, err):
		default:
		}
	}
}

// controlStuck is how long the control loop may go without finishing a
// tick before the watchdog stops beating: a merge of a flood's hosts may
// be slow, but a loop that is gone this long is stuck.
const controlStuck = 10 * time.Second

// watchdog beats the kernel's heartbeat on a thread of its own, every
// quarter of the fail-open limit, as long as the process makes progress:
// every worker has turned its loop within half the limit and the control
// loop has finished a tick within controlStuck. The heartbeat says the
// process is alive and working, not that it keeps up: an overloaded
// process keeps beating (and sheds load); a stuck worker or control loop
// stops it, and the kernel fails open.
func (r *Runner) watchdog() {
	defer r.wg.Done()
	r.raise("watchdog")
	every := min(hostmerge.Tick, r.cfg.FailOpen/4)
	t := time.NewTicker(every)
	defer t.Stop()
	last := make([]uint64, len(r.workers))
	moved := make([]time.Time, len(r.workers))
	for i := range moved {
		moved[i] = time.Now()
	}
	stuck := ""
	for now := range t.C {
		if r.stopping.Load() {
			return
		}
		why := ""
		for i, q := range r.workers {
			if l := q.loops.Load(); l != last[i] {
				last[i], moved[i] = l, now
			} else if d := now.Sub(moved[i]); d > r.cfg.FailOpen/2 {
				why = fmt.Sprintf("worker %d has made no progress for %v", q.id, d.Round(time.Millisecond))
			}
		}
		if d := now.Sub(time.Unix(0, r.ticked.Load())); d > controlStuck {
			why = fmt.Sprintf("the control loop has not finished a tick for %v", d.Round(time.Millisecond))
		}
		if why != "" {
			if stuck == "" {
				fmt.Fprintf(r.cfg.Log, "swarmguard: %s: heartbeat withheld, the kernel fails open after %v\n", why, r.cfg.FailOpen)
			}
			stuck = why
			r.count(func(s *Stats) { s.Withheld++ })
			continue
		}
		if stuck != "" {
			fmt.Fprintf(r.cfg.Log, "swarmguard: progress again; heartbeat resumed\n")
			stuck = ""
		}
		if err := r.objs.Beat(); err != nil {
			// Loud: the kernel fails open once the heartbeat is stale.
			r.count(func(s *Stats) { s.HeartbeatErrors++ })
			r.beatErrs.log(r.cfg.Log, "heartbeat", fmt.Errorf("%w (the kernel forwards everything itself after --fail-open %v)", err, r.cfg.FailOpen))
			continue
		}
		r.count(func(s *Stats) { s.Heartbeat = now })
	}
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
	// Below the control loop and the watchdog: under overload the workers
	// give way to the threads that keep decisions and the heartbeat going
	// (a higher nice value needs no privilege).
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, workerNice); err != nil {
		r.affinity <- fmt.Errorf("worker %d: nice %d: %w", q.id, workerNice, err)
	}
	for !r.stopping.Load() {
		q.loops.Add(1)
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
			if q.audit != nil {
				for _, f := range frames {
					q.audit.push(f, now)
				}
			}
			if !r.harness.Null {
				q.w.Burst(packet.LinkEthernet, frames, times, verdicts)
			}
			shared := out != nil && s.Shares(out)
			for i, d := range q.descs[:n] {
				frame, v := frames[i], verdicts[i]
				if out != nil && (v == shard.Pass || r.monitorOnly.Load()) {
					if shared {
						if s.Forward(d) {
							continue // out's until the kernel completes it, then back to s's fill ring
						}
					} else if a, buf, ok := out.TxFrame(); ok {
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
	r.raise("control loop")
	tick := time.NewTicker(hostmerge.Tick)
	defer tick.Stop()
	lastExpire := time.Now()
	ticks := 0
	for {
		select {
		case d := <-r.decisions:
			r.apply(&d)
		case c := <-r.reconf:
			ch, err := r.applyPolicy(c.p)
			c.done <- result{ch, err}
		case now := <-tick.C:
			if r.stopping.Load() {
				return
			}
			r.tick(now)
			r.ticked.Store(time.Now().UnixNano())
			if ticks++; ticks%healEvery == 0 {
				r.heal()
			}
			r.tickEvents(now)
			since := now.Sub(lastExpire)
			if since > time.Minute || since >= expireFloor && r.nextExpire != 0 && bpf.Monotonic() >= r.nextExpire {
				gone, err := r.reconcileBans()
				if err != nil {
					r.count(func(s *Stats) { s.ReconcileErrors++ })
					r.errs.log(r.cfg.Log, "reconcile bans", err)
				}
				r.count(func(s *Stats) { s.BansExpired += uint64(len(gone)) })
				for _, a := range gone {
					r.event(&Event{Time: now.UTC().Format(time.RFC3339Nano), EventType: EvUnban, Host: a.String(), Reason: "expired"})
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
	began := time.Now()
	got := r.engine.TickAsync(now.UnixNano(), tickWait)
	took := time.Since(began)
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
	workers := make([]WorkerStats, len(r.workers))
	for i, q := range r.workers {
		for _, s := range q.socks {
			st, err := s.Statistics()
			if err != nil {
				r.errs.log(r.cfg.Log, "socket statistics", err)
				continue
			}
			xs.Rx_dropped += st.Rx_dropped
			xs.Rx_ring_full += st.Rx_ring_full
			xs.Rx_fill_ring_empty_descs += st.Rx_fill_ring_empty_descs
			xs.Tx_ring_empty_descs += st.Tx_ring_empty_descs
			xs.Rx_invalid_descs += st.Rx_invalid_descs + st.Tx_invalid_descs
		}
		w := &workers[i]
		w.Worker, w.Queue, w.RxFrames, w.TxFrames, w.TxFull = q.id, q.queue, q.rx.Load(), q.tx.Load(), q.full.Load()
		w.Engine, w.Flows = r.engine.WorkerStats(i)
	}
	snap := r.engine.Merger().Snapshot()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Worker, r.stats.Flows = ws, fs
	r.stats.Tick, r.stats.TickMax = took, max(r.stats.TickMax, took)
	merge := r.engine.MergeTook()
	r.stats.Merge, r.stats.MergeMax = merge, max(r.stats.MergeMax, merge)
	r.stats.RxFrames, r.stats.TxFrames, r.stats.TxFull, r.stats.KickErrors = rx, tx, full, kick
	if got < len(r.workers) {
		r.stats.Late++
	}
	if err == nil {
		r.stats.Kernel = k
	}
	r.stats.Hosts = r.engine.Merger().Hosts()
	r.stats.HostsEvicted, r.stats.HostsShed = r.engine.Merger().EvictedHosts, r.engine.Merger().ShedHosts
	r.stats.HostLookupsGaveUp = r.engine.Merger().LookupsGaveUp()
	r.stats.Predicted = r.engine.Merger().Predicted()
	r.stats.Reputed = r.engine.Merger().Reputed()
	if snap != nil && snap.Gen > 0 {
		r.stats.Snapshot = time.Unix(0, snap.Time)
	}
	r.stats.Workers = workers
	r.stats.Lost = r.lost.Load()
	r.stats.XSKRxDropped, r.stats.XSKRxRingFull, r.stats.XSKFillEmpty = xs.Rx_dropped, xs.Rx_ring_full, xs.Rx_fill_ring_empty_descs
	r.stats.XSKTxEmpty, r.stats.XSKInvalid = xs.Tx_ring_empty_descs, xs.Rx_invalid_descs
	r.stats.UserBudget = r.adaptBudget(xs.Rx_ring_full)
}

// adaptBudget moves the kernel's budget of packets to the workers (per CPU)
// toward what the workers take: down by a quarter at a tick in which a
// socket's rx ring overflowed, back up by a fiftieth of the configured
// budget at a tick in which none did. So an overloaded box sheds in the
// kernel, counted, instead of losing frames at full rings. It returns the
// budget in force. Control goroutine only.
func (r *Runner) adaptBudget(ringFull uint64) int {
	top := r.cfg.UserPPS
	if top == 0 {
		return 0
	}
	if r.budget == 0 {
		r.budget = top
	}
	was := r.budget
	switch {
	case ringFull > r.ringFull:
		r.budget = max(r.budget*3/4, 1000, top/1000)
	case r.budget < top:
		r.budget = min(top, r.budget+max(1, top/50))
	}
	r.ringFull = ringFull
	if r.budget != was {
		mode := bpf.Bridge
		if r.cfg.Monitor != "" {
			mode = bpf.Monitor
		}
		if err := r.objs.Configure(mode, r.perQueue, r.cfg.FailOpen, r.budget); err != nil {
			r.errs.log(r.cfg.Log, "userspace budget", err)
		}
	}
	return r.budget
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
	s := r.stats
	s.Workers = slices.Clone(s.Workers)
	return s
}

// Port is one attached port and how the XDP program runs on it.
type Port struct {
	Name, Mode string
	Queues     int
}

// Ports lists the attached ports with their XDP mode as the kernel
// reports it now.
func (r *Runner) Ports() []Port {
	out := make([]Port, len(r.ports))
	for i, p := range r.ports {
		mode, err := xdpMode(p.Index)
		if err != nil {
			mode = "unknown"
		}
		out[i] = Port{Name: p.Name, Mode: mode, Queues: len(r.workers) / r.perQueue}
	}
	return out
}

// HostLabel is an untagged host's label in the newest snapshot, "" when
// the host state does not hold it. Any goroutine may call it.
func (r *Runner) HostLabel(a netip.Addr) string {
	snap := r.engine.Merger().Snapshot()
	if snap == nil {
		return ""
	}
	v := snap.HostView(hostmerge.HostOf(a, 0))
	if v.Flows == 0 && v.Peers == 0 {
		return ""
	}
	return v.Label.String()
}

// Ban is one ban of the kernel map.
type Ban struct {
	Addr    netip.Addr
	Expires time.Time
}

// Bans lists the bans in the kernel map that have not expired.
func (r *Runner) Bans() ([]Ban, error) {
	list, err := r.objs.BanList()
	if err != nil {
		return nil, err
	}
	mono, wall := bpf.Monotonic(), time.Now()
	var out []Ban
	for a, exp := range list {
		if exp > mono {
			out = append(out, Ban{Addr: a, Expires: wall.Add(time.Duration(exp - mono))})
		}
	}
	return out, nil
}

// BansActive counts the bans in the kernel map that have not expired.
func (r *Runner) BansActive() (int, error) {
	bans, err := r.objs.BanList()
	if err != nil {
		return 0, err
	}
	now, n := bpf.Monotonic(), 0
	for _, exp := range bans {
		if exp > now {
			n++
		}
	}
	return n, nil
}

// Config returns the configuration the runner runs with (defaults filled;
// the policy as last reconfigured).
func (r *Runner) Config() Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}

// Stop stops the workers, applies the decisions still queued, detaches
// the program and closes the sockets. The pinned ban map stays. It returns
// the first error of the run's control path or of the shutdown.
func (r *Runner) Stop() error {
	// A second Stop (a test's deferred one after its own) returns at once:
	// the sockets are gone by then.
	if !r.stopped.CompareAndSwap(false, true) {
		return nil
	}
	r.stopping.Store(true)
	r.wg.Wait()
	// The workers are gone: their sockets' frames can be counted, each
	// UMEM's with all the sockets on it.
	var socks []*xsk.Socket
	for _, q := range r.workers {
		socks = append(socks, q.socks...)
	}
	l, d := xsk.AccountAll(socks)
	lost := l + d
	r.count(func(s *Stats) { s.FramesUnaccounted = lost })
	for {
		select {
		case d := <-r.decisions:
			r.apply(&d)
		case c := <-r.reconf:
			ch, err := r.applyPolicy(c.p)
			c.done <- result{ch, err}
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

// reconcileBans removes expired bans (a previous run's or this run's) and
// returns whom it unbanned.
// It notes the earliest expiry left, for the control loop to come back
// then (its own bans note theirs as they are written).
func (r *Runner) reconcileBans() ([]netip.Addr, error) {
	bans, err := r.objs.BanList()
	if err != nil {
		return nil, err
	}
	now := bpf.Monotonic()
	var gone []netip.Addr
	r.nextExpire = 0
	for a, exp := range bans {
		if exp > now {
			r.noteExpiry(exp)
			continue
		}
		if err := r.objs.Unban(a); err != nil {
			return gone, fmt.Errorf("remove expired ban: %w", err)
		}
		gone = append(gone, a)
	}
	return gone, nil
}

// expireFloor is the least time between two passes over the ban map for
// expired bans: a ban's unban event (and its route's withdrawal) comes at
// most this late, and a box with a full map lists it at most this often.
// The kernel stops dropping at the expiry itself.
const expireFloor = 5 * time.Second

// noteExpiry keeps the earliest expiry of a ban in the map (monotonic ns).
func (r *Runner) noteExpiry(exp uint64) {
	if r.nextExpire == 0 || exp < r.nextExpire {
		r.nextExpire = exp
	}
}

// tickEvents logs what the tick saw besides flows: hosts that turned p2p
// in the new snapshot, and packets the kernel forwarded itself because the
// heartbeat was stale (a stall of this process: the kernel failed open).
func (r *Runner) tickEvents(now time.Time) {
	at := now.UTC().Format(time.RFC3339Nano)
	if snap := r.engine.Merger().Snapshot(); snap != nil && snap.Gen > r.hostGen {
		snap.TurnedSince(r.hostGen, func(h hostmerge.Host) {
			v := snap.HostView(h)
			rec := shard.NewHostRecord("", h, v, r.cfg.Model, true)
			r.event(&Event{Time: at, EventType: EvHost, Host: rec.Host, Label: rec.Label, P: rec.P, Reasons: topReasons(rec.Reasons, 3)})
		})
		r.hostGen = snap.Gen
	}
	k := r.Stats().Kernel
	open := k[bpf.FailOpenForward] + k[bpf.FailOpenPass]
	if open > r.failOpen {
		r.event(&Event{Time: at, EventType: EvFailOpen, Packets: open - r.failOpen, Reason: fmt.Sprintf("heartbeat older than %v", r.cfg.FailOpen)})
	}
	r.failOpen = open
}

// outerOf is a flow's tunnel endpoints, or none.
func outerOf(w *shard.Worker, f *shard.Flow) shard.Outer {
	o, _ := w.OuterOf(f)
	return o
}

// AddReputation makes peer, which another box proved to take part in p2p
// flows, a predicted peer of every host here until until: evidence for the
// flows to it, never a verdict alone (docs/SCALEOUT.md). Safe from any
// goroutine; it shows from the next tick.
func (r *Runner) AddReputation(peer netip.Addr, until time.Time) {
	r.engine.Merger().AddReputation(peer, until.UnixNano())
}
