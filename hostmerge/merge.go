package hostmerge

import (
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/hostmerge/cowmap"
)

// Window lengths: the short window catches bursts, the medium one swarm
// behaviour, the long one keeps a host from being forgotten too quickly.
const (
	Short  = 10 * time.Second
	Medium = 2 * time.Minute
	Long   = 30 * time.Minute
	// Tick is how often deltas are merged and a snapshot published.
	Tick = 100 * time.Millisecond
)

const (
	numWindows  = 3
	hllPrec     = 10 // 1 KiB dense at most, ~3% error
	numShards   = 64
	overlapBits = 256
)

// Config bounds the merger's memory. Zero fields take the defaults.
type Config struct {
	MaxHosts int // hosts kept (default 1<<18); the least recently active go first
	// NewPerMerge bounds the hosts one merge creates (default 4096, about
	// 40,000 a second): a flood of new source addresses then costs the
	// merge, and memory, a bounded amount; the events of hosts over it are
	// dropped and counted (ShedHosts). Hosts already known are never shed.
	NewPerMerge  int
	MaxPredicted int           // predicted peers kept (default 1<<20)
	PredictTTL   time.Duration // how long a predicted peer counts (default 30 min)
	Model        *classifier.Model
	// Local are the subscribers' networks (live.Config.Local): over the
	// bound, the one-flow hosts of a flood of remote addresses go before a
	// quiet subscriber's, and idle remote hosts before idle subscribers.
	Local []netip.Prefix
}

// host is the merger's state of one host. The fields a merge reads of
// every host it touches come first, up to ips: the part it warms (warm.go).
type host struct {
	addr    Host
	last    int64
	rotated int64
	touched bool // in this merge's touched list
	stale   bool // the sketches changed since the estimates
	label   classifier.Label
	pos     int32 // index in its shard's Merger.order; -1 once evicted
	slot    int32 // its slot in Merger.hosts
	p       float32
	view    *View  // the published view; never written once published
	viewGen uint64 // the generation view was derived in
	win     [numWindows]counters
	pend    counters // this merge's events, summed exactly before they join the windows
	// Distinct remote IPs and ports of outbound flows over the medium
	// window, rotated every half window.
	ips, ports         distinct
	peers, nports      uint32                   // cached estimates of the two sketch pairs
	estAt              int64                    // when the estimates were made
	tcpPeers, udpPeers [overlapBits / 64]uint64 // hashed remote IPs per protocol
	msePeers           [overlapBits / 64]uint64 // hashed peers of flows through the MSE/PE key exchange
	btPeers, discPeers [overlapBits / 64]uint64 // hashed peers of answered flows with BitTorrent / discovery signatures
}

// Merger folds worker deltas into host state and publishes snapshots. Only
// the goroutine that calls Merge touches its state; workers read the
// published Snapshot.
//
// A merge costs what changed: the hosts the deltas touched (and a bounded
// share of idle hosts, re-derived so that decay shows) get new views,
// stored in place in the index that every snapshot shares.
type Merger struct {
	cfg     Config
	hosts   *index             // every host, by address, with its view
	order   [numShards][]*host // each shard's hosts, for the refresh walk and eviction
	refresh int                // the shard the refresh walk is in
	cursor  int                // the walk's next index in it
	touched []*host            // hosts this merge changed
	free    []*host            // evicted hosts, reused for new ones: a flood at the bound allocates no host state
	nhosts  int
	pred    [numShards]map[predKey]int64 // expiry, ns: the merger's own copy, swept one shard a merge
	preds   *cowmap.Builder[predKey, int64]
	// Peer reputation: remote addresses other boxes saw in confirmed p2p
	// flows (docs/SCALEOUT.md), with their expiry. AddReputation may be
	// called from any goroutine; the merge takes what it queued.
	reputation *cowmap.Builder[netip.Addr, int64]
	repMu      sync.Mutex
	repPending []reputed
	sweep      int // next shard of pred swept
	snap       atomic.Pointer[Snapshot]
	npred      int
	gen        uint64 // merges so far: the generation of the next snapshot
	turns      []Turn // hosts that turned p2p in the last turnGens generations
	// Evicted counts hosts and predictions dropped to stay within bounds.
	EvictedHosts, EvictedPredictions uint64
	// ShedHosts counts the events of new hosts not created because a merge
	// had made NewPerMerge already (those events are dropped).
	ShedHosts uint64
	created   int    // hosts this merge created
	sink      uint64 // the sums of the warm loads (warm.go), kept so that the loads stay
}

// Turn is a host whose label became p2p at snapshot generation Gen.
type Turn struct {
	Gen  uint64
	Host Host
}

// turnGens is how many generations a snapshot keeps turns for (6.4 s of
// ticks): a worker that missed snapshots still sees the turns since its
// last one. maxTurns bounds them.
const (
	turnGens = 64
	maxTurns = 1 << 14
)

type reputed struct {
	peer netip.Addr
	exp  int64
}

// MaxReputation bounds the reputed peers kept; past it new ones are
// dropped (counted in EvictedPredictions).
const MaxReputation = 1 << 18

// AddReputation makes peer count as a predicted peer of every host until
// exp (ns): another box proved it takes part in p2p flows. It is evidence
// for a flow, never a verdict. Safe from any goroutine; it shows from the
// next merge.
func (m *Merger) AddReputation(peer netip.Addr, exp int64) {
	m.repMu.Lock()
	if len(m.repPending) < MaxReputation {
		m.repPending = append(m.repPending, reputed{peer.Unmap(), exp})
	}
	m.repMu.Unlock()
}

// takeReputation moves the queued reputed peers into the map.
func (m *Merger) takeReputation(now int64) {
	m.repMu.Lock()
	pend := m.repPending
	m.repPending = nil
	m.repMu.Unlock()
	for _, r := range pend {
		if r.exp <= now {
			continue
		}
		if m.reputation.Len() >= MaxReputation {
			m.sweepReputation(now)
		}
		if m.reputation.Len() >= MaxReputation {
			if _, ok := m.reputation.Get(addrHash(r.peer), r.peer); !ok {
				m.EvictedPredictions++
				continue
			}
		}
		m.reputation.Set(addrHash(r.peer), r.peer, r.exp)
	}
}

// sweepReputation drops the expired reputed peers (when the map is full:
// a lookup checks the time anyway).
func (m *Merger) sweepReputation(now int64) {
	var gone []netip.Addr
	m.snap.Load().rep.Range(func(a netip.Addr, exp int64) bool {
		if exp <= now {
			gone = append(gone, a)
		}
		return true
	})
	for _, a := range gone {
		m.reputation.Delete(addrHash(a), a)
	}
}

type predKey struct {
	host Host
	peer netip.AddrPort
}

// NewMerger makes a merger and publishes an empty snapshot.
func NewMerger(c Config) *Merger {
	if c.MaxHosts <= 0 {
		c.MaxHosts = 1 << 18
	}
	if c.NewPerMerge <= 0 {
		c.NewPerMerge = 4096
	}
	if c.MaxPredicted <= 0 {
		c.MaxPredicted = 1 << 20
	}
	if c.PredictTTL <= 0 {
		c.PredictTTL = Long
	}
	m := &Merger{
		cfg: c,
		// Hosts are bounded, so their map is made for the bound and never
		// rehashes in a merge; predictions are usually far below theirs.
		hosts:      newIndex(c.MaxHosts + c.NewPerMerge),
		preds:      cowmap.New[predKey, int64](4096),
		reputation: cowmap.New[netip.Addr, int64](1024),
	}
	for i := range m.pred {
		m.pred[i] = make(map[predKey]int64)
	}
	m.snap.Store(&Snapshot{hosts: m.hosts, pred: m.preds.Freeze(), rep: m.reputation.Freeze()})
	return m
}

// Hosts is the number of hosts the merger keeps.
func (m *Merger) Hosts() int { return m.nhosts }

// SetModel changes the host model from the next merge on.
func (m *Merger) SetModel(md *classifier.Model) { m.cfg.Model = md }

// Predicted is the number of peers predicted from discovery answers that
// are still within their TTL.
func (m *Merger) Predicted() int { return m.npred }

// LookupsGaveUp counts the snapshot lookups that gave up waiting for the
// merger's deletions (a merger descheduled in the middle of one for over
// 10 ms) and read a host as unseen. Safe from any goroutine.
func (m *Merger) LookupsGaveUp() uint64 { return m.hosts.gaveUp.Load() }

// Reputed is the number of peers other boxes proved that the merger holds
// (some may have expired: a lookup checks the time).
func (m *Merger) Reputed() int { return m.reputation.Len() }

// Snapshot returns the latest published snapshot. Safe from any goroutine.
func (m *Merger) Snapshot() *Snapshot { return m.snap.Load() }

func decayFactor(dt int64, w time.Duration) float64 {
	if dt <= 0 {
		return 1
	}
	return math.Exp(-float64(dt) / float64(w))
}

var windows = [numWindows]time.Duration{Short, Medium, Long}

func (h *host) decay(now int64) {
	dt := now - h.last
	if dt <= 0 {
		return
	}
	for i := range h.win {
		h.win[i].scale(decayFactor(dt, windows[i]))
	}
	h.last = now
	if now-h.rotated >= int64(Medium/2) {
		h.ips.rotate()
		h.ports.rotate()
		h.stale = true
		h.tcpPeers, h.udpPeers, h.msePeers = [overlapBits / 64]uint64{}, [overlapBits / 64]uint64{}, [overlapBits / 64]uint64{}
		h.btPeers, h.discPeers = [overlapBits / 64]uint64{}, [overlapBits / 64]uint64{}
		h.rotated = now
	}
}

// newHost makes a's state, in an evicted host's memory when there is one
// (nothing refers to an evicted host: snapshots hold views, not hosts).
func (m *Merger) newHost(a Host, now int64) *host {
	if n := len(m.free); n > 0 {
		h := m.free[n-1]
		m.free[n-1] = nil
		m.free = m.free[:n-1]
		*h = host{addr: a, last: now, rotated: now}
		return h
	}
	return &host{addr: a, last: now, rotated: now}
}

// host returns a's state, creating it within this merge's budget of new
// hosts; nil when a is new and the budget is spent. It marks the host
// touched.
func (m *Merger) host(a Host, now int64) *host {
	hash := hostHash(a)
	h := m.hosts.get(hash, a)
	if h == nil {
		if m.created >= m.cfg.NewPerMerge {
			m.ShedHosts++
			return nil
		}
		m.created++
		h = m.newHost(a, now)
		m.hosts.put(hash, h)
		o := &m.order[hash%numShards]
		h.pos = int32(len(*o))
		*o = append(*o, h)
		m.nhosts++
	}
	if !h.touched {
		h.touched = true
		m.touched = append(m.touched, h)
		h.decay(now)
	}
	return h
}

// Merge folds the deltas (in the order given) into the host state at time
// now, publishes a new snapshot and resets the deltas. Folding is
// commutative, so any number of workers gives the same state.
func (m *Merger) Merge(now int64, deltas ...*Delta) {
	// Sum each host's counts over the deltas first: integer counts add
	// exactly, so the windows do not depend on how many workers there are
	// or in which order they come.
	m.created = 0
	// Hosts come in batches whose state is warmed first (warm.go): at a
	// million hosts each is a cache and TLB miss, and the batch's overlap.
	for _, d := range deltas {
		inBatches(d.used, func(batch []int32) {
			m.sink += m.hosts.warmSlots(len(batch), func(j int) Host { return d.slots[batch[j]].addr }, unsafe.Offsetof(host{}.ips))
			for _, k := range batch {
				if h := m.host(d.slots[k].addr, now); h != nil {
					h.pend.add(&d.slots[k].c)
				}
			}
		})
	}
	for _, h := range m.touched {
		for i := range h.win {
			h.win[i].add(&h.pend)
		}
		h.pend = counters{}
	}
	for _, d := range deltas {
		inBatches(d.remotes, func(batch []remote) {
			m.sink += m.hosts.warmSlots(len(batch), func(j int) Host { return batch[j].host }, unsafe.Sizeof(host{}))
			for j := range batch {
				m.remote(&batch[j], now)
			}
		})
		exp := now + int64(m.cfg.PredictTTL)
		for _, p := range d.predicted {
			k := predKey(p)
			i := shardOf(p.host)
			if _, ok := m.pred[i][k]; !ok && m.npred >= m.cfg.MaxPredicted {
				m.EvictedPredictions++
				continue
			} else if !ok {
				m.npred++
			}
			m.pred[i][k] = exp
			m.preds.Set(predHash(k), k, exp)
		}
		d.Reset()
	}
	m.sweepPredictions(now)
	m.takeReputation(now)
	m.bound(now)
	m.publish(now)
}

// remote folds one remote of a delta into its host: the peer sketches and
// the per-protocol and per-kind peer bits.
func (m *Merger) remote(r *remote, now int64) {
	h := m.host(r.host, now)
	if h == nil {
		return
	}
	bit := r.peer % overlapBits
	switch r.kind {
	case msePeer:
		h.msePeers[bit/64] |= 1 << (bit % 64)
		return
	case btPeer:
		h.btPeers[bit/64] |= 1 << (bit % 64)
		return
	case discPeer:
		h.discPeers[bit/64] |= 1 << (bit % 64)
		return
	}
	h.ips.insert(r.peer)
	h.stale = true
	h.ports.insert(uint64(r.port)*0x9e3779b97f4a7c15 + 1)
	if r.proto == 6 {
		h.tcpPeers[bit/64] |= 1 << (bit % 64)
	} else {
		h.udpPeers[bit/64] |= 1 << (bit % 64)
	}
}

// sweepPredictions drops the expired predictions of one shard a merge
// (every one within 6.4 s of expiring; Predicted checks the time anyway).
func (m *Merger) sweepPredictions(now int64) {
	shard := m.pred[m.sweep]
	m.sweep = (m.sweep + 1) % numShards
	for k, exp := range shard {
		if exp <= now {
			delete(shard, k)
			m.preds.Delete(predHash(k), k)
			m.npred--
		}
	}
}

// bound drops the least recently active hosts when over the limit.
func (m *Merger) bound(now int64) {
	if m.nhosts <= m.cfg.MaxHosts {
		return
	}
	// Over the bound (checked at every merge, so it is passed by at most
	// one merge's new hosts): drop down to 15/16 of the bound so that the
	// next merges need not scan again. First the hosts a flood of spoofed
	// or scanning sources brings: at most one flow in the long window, no
	// p2p label; a real subscriber has more. Then hosts idle for longer
	// than the long window, then the least recently active. In each, remote
	// hosts (not in cfg.Local) go before the subscribers' addresses.
	target := m.cfg.MaxHosts - m.cfg.MaxHosts/16
	flood := func(h *host) bool {
		w := &h.win[numWindows-1]
		return w.newFlows+w.inbound < 1.5 && h.label != classifier.P2P
	}
	if len(m.cfg.Local) > 0 {
		m.evictWhere(target, func(h *host) bool { return flood(h) && !m.local(h) })
	}
	m.evictWhere(target, flood)
	for cut := now - int64(Long); len(m.cfg.Local) > 0 && m.nhosts > target; cut += int64(Long) / 4 {
		m.evictWhere(target, func(h *host) bool { return h.last < cut && !m.local(h) })
		if cut > now { // every remote host is gone
			break
		}
	}
	for cut := now - int64(Long); m.nhosts > target; cut += int64(Long) / 4 {
		m.evictWhere(target, func(h *host) bool { return h.last < cut })
	}
}

// local reports whether h is a subscriber: in one of cfg.Local.
func (m *Merger) local(h *host) bool {
	a := h.addr.Addr.Unmap()
	for _, p := range m.cfg.Local {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// SetLocal changes the subscribers' networks (a reload); only the
// goroutine that calls Merge may call it.
func (m *Merger) SetLocal(local []netip.Prefix) { m.cfg.Local = slices.Clone(local) }

// evictWhere evicts hosts for which drop holds, newest first in each
// shard, until target hosts are left.
func (m *Merger) evictWhere(target int, drop func(h *host) bool) {
	for s := range m.order {
		// Backwards: evict moves the shard's last host into the freed
		// index, and that host has been looked at already.
		for i := len(m.order[s]) - 1; i >= 0 && m.nhosts > target; i-- {
			if h := m.order[s][i]; drop(h) {
				m.evict(h)
			}
		}
	}
}

// evict forgets h: its state, its place in the refresh walk and its view
// in the next snapshot.
func (m *Merger) evict(h *host) {
	hash := hostHash(h.addr)
	s := hash % numShards
	m.hosts.del(h)
	o := m.order[s]
	last := o[len(o)-1]
	o[h.pos], last.pos = last, h.pos
	o[len(o)-1] = nil
	m.order[s] = o[:len(o)-1]
	h.pos = -1
	m.nhosts--
	m.EvictedHosts++
	// bound evicts a sixteenth of the hosts at once, and the merges after
	// it create them again: keep that many.
	if len(m.free) < m.cfg.MaxHosts/16+m.cfg.NewPerMerge {
		m.free = append(m.free, h)
	}
}

func shardOf(a Host) int {
	return int(hostHash(a) % numShards)
}

// maxRefresh bounds the idle hosts re-derived per merge. The refresh walk
// takes one shard a merge, so up to 65,536 hosts every view is at most
// 64 merges (6.4 s) old; a larger shard takes several merges, so a merge
// stays bounded: at a million hosts a view is at most ~98 s old, and the
// walk costs ~1 ms of the tick (a cold host each ~1 us, BENCHMARKS.md). An
// idle host's view only shows decay: a flow touches both its hosts, which
// are re-derived in the next merge.
const maxRefresh = 1024

// publish derives new views for the hosts this merge touched and for the
// next stretch of the refresh walk, stores the ones that differ in their
// hosts' slots and publishes the predictions as the next snapshot.
// Earlier snapshots stay valid for their readers.
func (m *Merger) publish(now int64) {
	m.gen++
	keep := 0
	for keep < len(m.turns) && m.turns[keep].Gen+turnGens <= m.gen {
		keep++
	}
	// A new slice each time: earlier snapshots keep theirs.
	turns := append(make([]Turn, 0, len(m.turns)-keep+4), m.turns[keep:]...)
	inBatches(m.touched, func(batch []*host) {
		m.sink += m.hosts.warmHosts(batch)
		for _, h := range batch {
			h.touched = false
			if h.pos >= 0 {
				turns = m.derive(h, now, turns)
			}
		}
	})
	m.touched = m.touched[:0]
	o := m.order[m.refresh]
	end := min(len(o), m.cursor+maxRefresh)
	inBatches(o[min(m.cursor, end):end], func(batch []*host) {
		m.sink += m.hosts.warmHosts(batch)
		for _, h := range batch {
			if h.viewGen != m.gen {
				h.decay(now)
				turns = m.derive(h, now, turns)
			}
		}
	})
	m.cursor = end
	if end == len(o) {
		m.refresh, m.cursor = (m.refresh+1)%numShards, 0
	}
	m.turns = turns
	m.snap.Store(&Snapshot{Time: now, Gen: m.gen, hosts: m.hosts, pred: m.preds.Freeze(), rep: m.reputation.Freeze(), turns: turns})
}

// derive computes h's view for this generation and stores it when it
// differs from the published one.
func (m *Merger) derive(h *host, now int64, turns []Turn) []Turn {
	was := h.label
	v := m.view(h)
	h.viewGen = m.gen
	if h.label == classifier.P2P && was != classifier.P2P && len(turns) < maxTurns {
		turns = append(turns, Turn{Gen: m.gen, Host: h.addr})
	}
	v.key = keyOf(h.addr)
	if h.view == nil || *h.view != v {
		nv := new(View)
		*nv = v
		m.hosts.publish(h, nv)
	}
	return turns
}
