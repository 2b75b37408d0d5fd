package hostmerge

import (
	"maps"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/swarmguard/swarmguard/classifier"
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
}

// host is the merger's state of one host.
type host struct {
	last int64
	win  [numWindows]counters
	// Distinct remote IPs and ports of outbound flows over the medium
	// window: two sketches, rotated every half window.
	ips, ports         [2]*hyperloglog.Sketch
	rotated            int64
	peers, nports      uint32                   // cached estimates of the two sketch pairs
	stale              bool                     // the sketches changed since the estimates
	estAt              int64                    // when the estimates were made
	view               View                     // the last computed view
	changed            bool                     // state changed since view was computed
	tcpPeers, udpPeers [overlapBits / 64]uint64 // hashed remote IPs per protocol
	msePeers           [overlapBits / 64]uint64 // hashed peers of flows through the MSE/PE key exchange
	btPeers, discPeers [overlapBits / 64]uint64 // hashed peers of answered flows with BitTorrent / discovery signatures
	label              classifier.Label
	p                  float32
}

// Merger folds worker deltas into host state and publishes snapshots. Only
// the goroutine that calls Merge touches its state; workers read the
// published Snapshot.
type Merger struct {
	cfg      Config
	hosts    [numShards]map[Host]*host // by shardOf, like the snapshot
	nhosts   int
	pred     [numShards]map[predKey]int64 // expiry, ns; sharded by host like the snapshot
	snap     atomic.Pointer[Snapshot]
	refresh  int // next shard refreshed to show decay on idle hosts
	lastTick int64
	npred    int
	sum      map[Host]counters
	gen      uint64 // merges so far: the generation of the next snapshot
	turns    []Turn // hosts that turned p2p in the last turnGens generations
	// Evicted counts hosts and predictions dropped to stay within bounds.
	EvictedHosts, EvictedPredictions uint64
	// ShedHosts counts new hosts not created because a merge had made
	// NewPerMerge already (their events that merge are dropped).
	ShedHosts uint64
	created   int // hosts this merge created
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
	m := &Merger{cfg: c, sum: make(map[Host]counters)}
	for i := range m.pred {
		m.pred[i] = make(map[predKey]int64)
		m.hosts[i] = make(map[Host]*host)
	}
	s := &Snapshot{}
	for i := range s.hosts {
		s.hosts[i] = &hostShard{}
		s.pred[i] = &predShard{}
	}
	m.snap.Store(s)
	return m
}

// Hosts is the number of hosts the merger keeps.
func (m *Merger) Hosts() int { return m.nhosts }

// SetModel changes the host model from the next merge on.
func (m *Merger) SetModel(md *classifier.Model) { m.cfg.Model = md }

// Predicted is the number of peers predicted from discovery answers that
// are still within their TTL.
func (m *Merger) Predicted() int { return m.npred }

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
		h.ips[1], h.ips[0] = h.ips[0], h.ips[1]
		h.ports[1], h.ports[0] = h.ports[0], h.ports[1]
		h.ips[0].Reset()
		h.ports[0].Reset()
		h.stale = true
		h.tcpPeers, h.udpPeers, h.msePeers = [overlapBits / 64]uint64{}, [overlapBits / 64]uint64{}, [overlapBits / 64]uint64{}
		h.btPeers, h.discPeers = [overlapBits / 64]uint64{}, [overlapBits / 64]uint64{}
		h.rotated = now
	}
}

func newHost(now int64) *host {
	h := &host{last: now, rotated: now}
	for i := range h.ips {
		h.ips[i], _ = hyperloglog.NewSketch(hllPrec, true)
		h.ports[i], _ = hyperloglog.NewSketch(hllPrec, true)
	}
	return h
}

// host returns a's state, creating it within this merge's budget of new
// hosts; nil when a is new and the budget is spent.
func (m *Merger) host(a Host, now int64) *host {
	sh := m.hosts[shardOf(a)]
	h := sh[a]
	if h == nil {
		if m.created >= m.cfg.NewPerMerge {
			m.ShedHosts++
			return nil
		}
		m.created++
		h = newHost(now)
		sh[a] = h
		m.nhosts++
	}
	h.changed = true
	h.decay(now)
	return h
}

// Merge folds the deltas (in the order given) into the host state at time
// now, publishes a new snapshot and resets the deltas. Folding is
// commutative, so any number of workers gives the same state.
func (m *Merger) Merge(now int64, deltas ...*Delta) {
	var dirty, predDirty [numShards]bool
	// Sum the deltas first: integer counts add exactly, so the result does
	// not depend on how many workers there are or in which order they come.
	clear(m.sum)
	for _, d := range deltas {
		d.each(func(a Host, c *counters) {
			s := m.sum[a]
			s.add(c)
			m.sum[a] = s
		})
	}
	m.created = 0
	for a, c := range m.sum {
		h := m.host(a, now)
		if h == nil {
			continue
		}
		for i := range h.win {
			h.win[i].add(&c)
		}
		dirty[shardOf(a)] = true
	}
	for _, d := range deltas {
		for _, r := range d.remotes {
			h := m.host(r.host, now)
			if h == nil {
				continue
			}
			dirty[shardOf(r.host)] = true
			bit := r.peer % overlapBits
			switch r.kind {
			case msePeer:
				h.msePeers[bit/64] |= 1 << (bit % 64)
				continue
			case btPeer:
				h.btPeers[bit/64] |= 1 << (bit % 64)
				continue
			case discPeer:
				h.discPeers[bit/64] |= 1 << (bit % 64)
				continue
			}
			h.ips[0].InsertHash(r.peer)
			h.stale = true
			h.ports[0].InsertHash(uint64(r.port)*0x9e3779b97f4a7c15 + 1)
			if r.proto == 6 {
				h.tcpPeers[bit/64] |= 1 << (bit % 64)
			} else {
				h.udpPeers[bit/64] |= 1 << (bit % 64)
			}
			dirty[shardOf(r.host)] = true
		}
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
			predDirty[i] = true
		}
		d.Reset()
	}
	// Idle hosts decay too: one more shard is re-derived every tick, so every
	// host's view is at most 6.4 s old.
	refresh := m.refresh
	dirty[refresh] = true
	m.refresh = (m.refresh + 1) % numShards
	m.bound(now, &predDirty)
	m.publish(now, &dirty, &predDirty, refresh)
	m.lastTick = now
}

// bound drops the least recently active hosts and expired predictions when
// over the limits. It runs at most once a second of input time.
func (m *Merger) bound(now int64, predDirty *[numShards]bool) {
	if now/int64(time.Second) != m.lastTick/int64(time.Second) {
		for i, shard := range m.pred {
			for k, exp := range shard {
				if exp <= now {
					delete(shard, k)
					m.npred--
					predDirty[i] = true
				}
			}
		}
	}
	if m.nhosts <= m.cfg.MaxHosts {
		return
	}
	// Over the bound (checked at every merge, so it is passed by at most
	// one merge's new hosts): drop down to 15/16 of the bound so that the
	// next merges need not scan again. First the hosts a flood of spoofed
	// or scanning sources brings: at most one flow in the long window, no
	// p2p label; a real subscriber has more. Then hosts idle for longer
	// than the long window, then the least recently active.
	target := m.cfg.MaxHosts - m.cfg.MaxHosts/16
	for _, sh := range m.hosts {
		for a, h := range sh {
			if m.nhosts <= target {
				return
			}
			if w := &h.win[numWindows-1]; w.newFlows+w.inbound < 1.5 && h.label != classifier.P2P {
				delete(sh, a)
				m.nhosts--
				m.EvictedHosts++
			}
		}
	}
	cut := now - int64(Long)
	for m.nhosts > target {
		for _, sh := range m.hosts {
			for a, h := range sh {
				if h.last < cut && m.nhosts > target {
					delete(sh, a)
					m.nhosts--
					m.EvictedHosts++
				}
			}
		}
		cut += int64(Long) / 4
	}
}

func shardOf(a Host) int {
	return int(hostHash(a) % numShards)
}

// publish copies the dirty shards into a new snapshot; clean shards are
// shared with the previous one, which stays valid for its readers.
//
// Only hosts whose state changed get a new view; the others keep theirs,
// except in the refresh shard, where every view is derived again so that
// decay shows on idle hosts.
func (m *Merger) publish(now int64, dirty, predDirty *[numShards]bool, refresh int) {
	old := m.snap.Load()
	m.gen++
	s := &Snapshot{Time: now, Gen: m.gen, hosts: old.hosts, pred: old.pred}
	keep := 0
	for keep < len(m.turns) && m.turns[keep].Gen+turnGens <= m.gen {
		keep++
	}
	// A new slice each time: earlier snapshots keep theirs.
	turns := append(make([]Turn, 0, len(m.turns)-keep+4), m.turns[keep:]...)
	for i := range dirty {
		if predDirty[i] {
			s.pred[i] = &predShard{m: maps.Clone(m.pred[i])}
		}
		if !dirty[i] {
			continue
		}
		sh := &hostShard{idx: make(map[Host]int32, len(m.hosts[i])), views: make([]View, 0, len(m.hosts[i]))}
		for a, h := range m.hosts[i] {
			if h.changed || i == refresh {
				h.decay(now)
				was := h.label
				h.view = m.view(h)
				h.changed = false
				if h.label == classifier.P2P && was != classifier.P2P && len(turns) < maxTurns {
					turns = append(turns, Turn{Gen: m.gen, Host: a})
				}
			}
			sh.idx[a] = int32(len(sh.views))
			sh.views = append(sh.views, h.view)
		}
		s.hosts[i] = sh
	}
	m.turns, s.turns = turns, turns
	m.snap.Store(s)
}
