package shard

import (
	"net/netip"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/hostmerge"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// Verdict is what happens to one packet.
type Verdict uint8

// Verdicts.
const (
	Pass Verdict = iota // forward (bridge) or ignore (monitor)
	Drop                // the packet belongs to a p2p flow
)

// Config configures a worker. Zero fields take the defaults of each package.
type Config struct {
	Flows  TableConfig
	Budget classifier.Budget
	Model  *classifier.Model
	// RescoreEvery is how often (in packets) a flow still unknown after its
	// budget is scored again, since host context may have grown (default 32).
	RescoreEvery uint32
	// Observe, if set, sees every scoring of a flow with the context of both
	// endpoints (Lo, Hi). With Collect set no label becomes final, so every
	// flow is scored at each packet it is inspected at: the trainer's rows do
	// not depend on the model they will fit. lo and hi point into the host
	// snapshot: read them, never keep or write them.
	Observe func(f *Flow, lo, hi *classifier.HostFeatures)
	Collect bool
}

// Stats counts what a worker saw. One owner; read after the worker stops
// or through a copy made between batches.
type Stats struct {
	Packets   uint64
	Fragments uint64 // non-first fragments: counted, not classified
	NotIP     uint64
	OtherL4   uint64
	Malformed uint64
	TooDeep   uint64 // frames with more encapsulation than packet.MaxEncap: counted, not followed
	Decided   uint64 // packets that ended at the cached final label
	Inspected uint64 // packets the recognizers looked at
	Slow      uint64 // packets of flows without a final label (the slow path; Inspected is part of it)
	Dropped   uint64 // packets of p2p flows
	Redecided uint64 // flows rescored because a host turned p2p
	// Sided counts flows that reached SidedAt packets while being
	// classified, and OneSided those of them whose packets all went one
	// way: a box given one direction of its traffic (routers steering
	// asymmetrically, docs/SCALEOUT.md) counts nearly all of them one-sided.
	Sided, OneSided uint64
}

// SidedAt is the packet count at which a flow is counted as one-sided or
// not: enough that an answer was due (a TCP handshake, a request and its
// reply), few enough that nearly every flow gets there before its label is
// final.
const SidedAt = 4

func (s *Stats) add(o *Stats) {
	s.Packets += o.Packets
	s.Fragments += o.Fragments
	s.NotIP += o.NotIP
	s.OtherL4 += o.OtherL4
	s.Malformed += o.Malformed
	s.TooDeep += o.TooDeep
	s.Decided += o.Decided
	s.Inspected += o.Inspected
	s.Slow += o.Slow
	s.Dropped += o.Dropped
	s.Redecided += o.Redecided
	s.Sided += o.Sided
	s.OneSided += o.OneSided
}

// Worker is one core's share of the data path. It is not safe for
// concurrent use; the live source gives each worker its own goroutine.
type Worker struct {
	table    *Table
	delta    *hostmerge.Delta
	snap     *hostmerge.Snapshot // the newest host snapshot as of the last Poll
	snapGen  uint64              // the generation of the last snapshot whose turns were acted on
	outer    *outerTable         // tunnel endpoints of tunnelled flows, beside the table
	turns    []pendingTurn       // hosts turned p2p the re-decision pass still looks for
	turned   []turnedHost        // those hosts, for the pass's current step
	cursor   int                 // the pass's next bucket
	link     *tickLink           // the hand-over to the engine's clock
	model    *classifier.Model
	budget   classifier.Budget
	rescore  uint32
	observe  func(f *Flow, lo, hi *classifier.HostFeatures)
	collect  bool
	scratch  classifier.Scratch
	pkt      classifier.Packet       // the packet being inspected, as the recognizers see it
	cur      decoded                 // the frame on the path, kept here so Meta does not escape
	hctx     classifier.HostFeatures // host context of the flow being decided
	noHost   classifier.HostFeatures // hosts' answer before the first snapshot: zero, never written
	recs     [MaxBurst]burstRec      // Burst's scratch
	slowOnly bool                    // the fast path is off: only the engine's tests, to compare it with the full path
	now      int64
	// Leave receives every flow as it leaves the table (expired, evicted or
	// flushed), with its final probability and host context filled in.
	Leave func(f *Flow, why Reason, host classifier.HostFeatures)
	// Decided is called once when a flow's label becomes final, with the host
	// context it was decided in. It runs on the packet path: it must not
	// block or allocate (the live runner copies into a channel).
	Decided func(f *Flow, h *classifier.HostFeatures)
	Stats   Stats
}

// NewWorker makes a worker. The model must be set.
func NewWorker(c Config) *Worker {
	if c.Budget == (classifier.Budget{}) {
		c.Budget = classifier.DefaultBudget()
	}
	if c.RescoreEvery == 0 {
		c.RescoreEvery = 32
	}
	w := &Worker{
		table:   NewTable(c.Flows),
		delta:   hostmerge.NewDelta(0),
		model:   c.Model,
		budget:  c.Budget,
		rescore: c.RescoreEvery,
		observe: c.Observe,
		collect: c.Collect,
	}
	w.outer = newOuterTable(w.table.Capacity())
	w.table.Leave = w.leave
	return w
}

// Delta is the worker's host delta (handed to the merger at each tick).
func (w *Worker) Delta() *hostmerge.Delta { return w.delta }

// Table is the worker's flow table.
func (w *Worker) Table() *Table { return w.table }

// Packet runs one frame through the path and returns its verdict. now is
// the packet time in ns (capture time offline, wall time live) and must not
// go backwards by more than the caller tolerates.
func (w *Worker) Packet(link packet.LinkType, frame []byte, now int64) Verdict {
	if link == packet.LinkEthernet && !w.slowOnly {
		if v, ok := w.fast(frame, now); ok {
			return v
		}
	}
	return w.full(link, frame, now)
}

// full is Packet without the fast path: decode, key, lookup, then the
// cached label or the slow path.
func (w *Worker) full(link packet.LinkType, frame []byte, now int64) Verdict {
	b := &w.cur
	if !w.decode(link, frame, b) {
		w.now = now
		return Pass
	}
	return w.process(b, now)
}

// decoded is one frame after decoding: its metadata, flow key and hash.
type decoded struct {
	meta packet.Meta
	key  Key
	hash uint64
	dir  uint8
}

// decode parses a frame and keys its flow; false for frames with no flow.
func (w *Worker) decode(link packet.LinkType, frame []byte, b *decoded) bool {
	w.Stats.Packets++
	switch packet.Decode(link, frame, &b.meta) {
	case packet.OK:
	case packet.Fragment:
		w.Stats.Fragments++
		return false
	case packet.NotIP:
		w.Stats.NotIP++
		return false
	case packet.OtherL4:
		w.Stats.OtherL4++
		return false
	case packet.TooDeep:
		w.Stats.TooDeep++
		return false
	default:
		w.Stats.Malformed++
		return false
	}
	b.dir = b.key.Set(&b.meta)
	b.hash = b.key.Hash()
	return true
}

// process looks the flow up and applies its cached label, or takes the slow path.
func (w *Worker) process(b *decoded, now int64) Verdict {
	w.now = now
	m, dir := &b.meta, b.dir
	f, created := w.table.Lookup(&b.key, b.hash, now)
	if f == nil {
		return Pass // shed: over the new-flow budget (TableStats.Shed)
	}
	if created && dir == 1 {
		f.Flags |= classifier.FlagInitHi
	}
	if f.Flags&classifier.FlagFinal != 0 {
		f.AccountDecided(dir, m.PayloadLen, m.TCPFlags, now)
		w.Stats.Decided++
		if f.Flags&classifier.FlagHarvest != 0 {
			w.harvest(f, m, dir)
		}
		if f.Label == classifier.P2P {
			if f.More&classifier.MoreConfirmed == 0 && f.Answered() {
				w.confirm(f)
			}
			w.Stats.Dropped++
			return Drop
		}
		return Pass
	}
	f.Account(dir, m.PayloadLen, m.TCPFlags, now)
	w.Stats.Slow++
	if f.Pkts[0]+f.Pkts[1] == SidedAt {
		w.Stats.Sided++
		if f.Pkts[0] == 0 || f.Pkts[1] == 0 {
			w.Stats.OneSided++
		}
	}
	v := w.slow(f, m, dir, created)
	if v == Drop {
		w.Stats.Dropped++
	}
	return v
}

func verdict(f *Flow) Verdict {
	if f.Label == classifier.P2P {
		return Drop
	}
	return Pass
}

// slow is the path of flows without a final label: first packets, budgeted
// inspection, host events and scoring.
func (w *Worker) slow(f *Flow, m *packet.Meta, dir uint8, created bool) Verdict {
	init, resp := w.endpoints(f)
	ih, rh := hostOf(f, init.Addr()), hostOf(f, resp.Addr())
	score := false
	if created {
		w.delta.FlowStart(ih, rh, resp.Port(), f.Key.Proto)
		w.setTunnel(f, m)
	}
	// A peer announced by a tracker, DHT or PEX answer: strong evidence from
	// the first packet. The answer reaches the snapshot at the next merge, so
	// flows opened within the same tick are checked again on later packets
	// (a SYN's retransmission, the first payload).
	if f.Evidence&classifier.EvPredicted == 0 && w.snap != nil && w.snap.Predicted(ih, resp, w.now) {
		f.Evidence |= classifier.EvPredicted
		score = true
	}
	wasExhausted := f.Flags&classifier.FlagExhausted != 0
	if len(m.Payload) > 0 && !w.budget.Exhausted(&f.FlowState, w.now) {
		w.Stats.Inspected++
		changed := w.inspect(f, dir, m)
		if w.scratch.Peers.N > 0 {
			// Peers are announced to the receiver of this packet.
			w.delta.Predict(hostOf(f, m.DstAddr()), &w.scratch.Peers)
		}
		w.reportPeer(f, ih, rh, changed)
		score = true
	} else if f.Packets()%w.rescore == 0 || !wasExhausted && w.budget.Exhausted(&f.FlowState, w.now) {
		score = true // rescore now and then, and once as the budget runs out
	}
	if score {
		w.decide(f)
	}
	return verdict(f)
}

// reportPeer tells the host delta about f's strong evidence: its verified
// BitTorrent signatures once the other side answered (an LSD announce is
// never answered), again when they grow, and the MSE exchange once whole.
// Hosts count the distinct peers so reached.
func (w *Worker) reportPeer(f *Flow, a, b hostmerge.Host, changed bool) {
	mse := false
	if f.Flags&classifier.FlagMSEReported == 0 && classifier.MSEExchanged(&f.FlowState) {
		f.Flags |= classifier.FlagMSEReported
		// A swarm's peers listen on unprivileged ports; an MSE-like
		// exchange with a server on 443 or 80 (MTProto, obfuscated
		// proxies) makes that server no peer.
		mse = f.More&classifier.MoreHighPorts != 0
	}
	ev := f.Evidence & classifier.EvHostStrong
	if ev != 0 && (changed || f.More&classifier.MoreHostReported == 0) && (f.Answered() || ev == classifier.EvLSD) {
		f.More |= classifier.MoreHostReported
	} else {
		ev = 0
	}
	if ev != 0 || mse {
		w.delta.PeerEvidence(a, b, ev, mse)
	}
}

// harvest keeps reading a decided discovery flow (tracker, DHT, peer wire
// with PEX) for the peers its answers announce, within the flow's budget.
func (w *Worker) harvest(f *Flow, m *packet.Meta, dir uint8) {
	if w.budget.Exhausted(&f.FlowState, w.now) {
		f.Flags &^= classifier.FlagHarvest
		return
	}
	if len(m.Payload) == 0 {
		return
	}
	w.inspect(f, dir, m)
	if w.scratch.Peers.N > 0 {
		w.delta.Predict(hostOf(f, m.DstAddr()), &w.scratch.Peers)
	}
}

// inspect runs the recognizers on m, the packet of f in direction dir, and
// reports whether f's evidence changed.
func (w *Worker) inspect(f *Flow, dir uint8, m *packet.Meta) bool {
	p := &w.pkt
	p.Payload, p.Dst, p.SrcPort, p.DstPort, p.Proto, p.IPv6 = m.Payload, m.DstAddr(), m.SrcPort, m.DstPort, m.Proto, m.IPv6
	return classifier.Inspect(&f.FlowState, dir, p, &w.budget, &w.scratch)
}

// hostOf is the host of address a of flow f: the address, scoped to the
// flow's subscriber path when it is one many subscribers reuse.
func hostOf(f *Flow, a netip.Addr) hostmerge.Host { return hostmerge.HostOf(a, f.Key.Path()) }

func (w *Worker) endpoints(f *Flow) (init, resp netip.AddrPort) {
	i := f.Initiator()
	return f.Key.Endpoint(i), f.Key.Endpoint(1 - i)
}

// hostContext returns the context of the flow's more suspicious endpoint.
func (w *Worker) hostContext(f *Flow) classifier.HostFeatures {
	a, b := w.hosts(f)
	if b.Score > a.Score {
		return *b
	}
	return *a
}

// hosts returns the context of the flow's two endpoints, Lo then Hi: views
// into the snapshot, to read only.
func (w *Worker) hosts(f *Flow) (lo, hi *classifier.HostFeatures) {
	if w.snap == nil {
		return &w.noHost, &w.noHost
	}
	return &w.snap.HostView(hostOf(f, f.Key.LoAddr.Netip())).HostFeatures,
		&w.snap.HostView(hostOf(f, f.Key.HiAddr.Netip())).HostFeatures
}

// decide scores f and makes its label final when the evidence is enough.
func (w *Worker) decide(f *Flow) {
	// The context lives in the worker: handed to Decided by pointer, a local
	// would escape to the heap on every decision.
	w.hctx = w.hostContext(f)
	h := &w.hctx
	p := w.score(f, h)
	if w.observe != nil && w.collect {
		return
	}
	f.Label = w.label(p, f.Flags&(classifier.FlagExhausted|classifier.FlagFin) != 0)
	if f.Label == classifier.Normal && classifier.EncryptedP2PShape(&f.FlowState) && !w.calm(f) {
		// Encrypted-BitTorrent-shaped and a host not known calm: wait for
		// the host context, which decides this kind of flow.
		f.Label = classifier.Unknown
	}
	if f.Label == classifier.Unknown {
		return
	}
	f.Flags |= classifier.FlagFinal
	if f.Label == classifier.P2P && f.Evidence&classifier.EvPeerSources != 0 {
		f.Flags |= classifier.FlagHarvest
	}
	f.DecidedAt = uint16(min(f.Packets(), 0xffff))
	confirmed := f.Answered()
	if confirmed {
		f.More |= classifier.MoreConfirmed
	}
	w.flowEnd(f, confirmed, false)
	if w.Decided != nil {
		w.Decided(f, h)
	}
}

// calm reports whether both of f's hosts are labelled normal in the
// snapshot (a host's label is normal only while its probability is at or
// below TLow): an encrypted P2P-shaped flow may be final normal only then.
func (w *Worker) calm(f *Flow) bool {
	if w.snap == nil {
		return false
	}
	return w.snap.HostView(hostOf(f, f.Key.LoAddr.Netip())).Label == classifier.Normal &&
		w.snap.HostView(hostOf(f, f.Key.HiAddr.Netip())).Label == classifier.Normal
}

// pendingTurn is a host that turned p2p, with the buckets of the table the
// re-decision pass must still look into for it.
type pendingTurn struct {
	host turnedHost
	left int
}

// turnedHost is a turned host as the pass compares it with flow keys: its
// address words and, for a host scoped to a path, that path.
type turnedHost struct {
	addr   packet.Addr16
	path   uint32
	scoped bool
}

// redecideChunk is the buckets (8 flows each) one re-decision step scans:
// ~80 µs at 10 ns a flow (BenchmarkRedecideScan), so a step between two rx
// batches never holds the worker long, whatever the table's size.
const redecideChunk = 1024

// turn queues hosts that turned p2p for the re-decision pass: each stays
// until the pass has looked into every bucket once since it joined.
func (w *Worker) turn(h hostmerge.Host) {
	t := turnedHost{addr: packet.AddrWords(h.Addr), path: uint32(h.Path), scoped: h.Path != 0}
	w.turns = append(w.turns, pendingTurn{host: t, left: w.table.Buckets()})
}

// redecideStep runs the re-decision pass over up to buckets buckets. The
// pass rescores the flows of turned hosts that are unknown, or final normal
// without a known protocol: host context decides such flows, and it just
// changed. A final label so overturned is marked (MoreRedecided) and
// reported again through Decided: live, the flow's bypass entry becomes a
// drop. The flow's state is checked first, and the few turned hosts are
// compared as address words, without hashing.
func (w *Worker) redecideStep(buckets int) {
	if len(w.turns) == 0 {
		return
	}
	n := 0 // no further than the pass still has to go for any turn
	w.turned = w.turned[:0]
	for _, t := range w.turns {
		w.turned = append(w.turned, t.host)
		n = max(n, t.left)
	}
	n = min(n, buckets)
	w.cursor = w.table.RangeBuckets(w.cursor, n, w.redecideFlow)
	kept := w.turns[:0]
	for _, t := range w.turns {
		if t.left -= n; t.left > 0 {
			kept = append(kept, t)
		}
	}
	w.turns = kept
}

// redecideAll finishes the pass (the offline clock: every turn is acted on
// at the tick, in packet time).
func (w *Worker) redecideAll() {
	for len(w.turns) > 0 {
		w.redecideStep(w.table.Buckets())
	}
}

// redecideFlow rescores f if it is a flow of a turned host that host
// context decides.
func (w *Worker) redecideFlow(f *Flow) {
	final := f.Flags&classifier.FlagFinal != 0
	if final && (f.Label != classifier.Normal || classifier.KnownProtocol(&f.FlowState)) {
		return
	}
	hit := false
	for _, a := range w.turned {
		if (f.Key.LoAddr == a.addr || f.Key.HiAddr == a.addr) && (!a.scoped || f.Key.Path() == a.path) {
			hit = true
			break
		}
	}
	if !hit {
		return
	}
	if final {
		f.Flags &^= classifier.FlagFinal | classifier.FlagHarvest
		f.Label = classifier.Unknown
		f.More |= classifier.MoreRedecided
	}
	w.Stats.Redecided++
	w.decide(f)
	if f.Label == classifier.Unknown && f.More&classifier.MoreRedecided != 0 {
		// Still not p2p: it goes back to where it was.
		f.Label = classifier.Normal
		f.Flags |= classifier.FlagFinal
		f.More &^= classifier.MoreRedecided
	}
}

// score scores f in host context h, keeps the probability in the flow and
// shows the scoring to Observe.
func (w *Worker) score(f *Flow, h *classifier.HostFeatures) float64 {
	p := w.model.Score(&f.FlowState, h)
	f.SetProb(p)
	if w.observe != nil {
		lo, hi := w.hosts(f)
		w.observe(f, lo, hi)
	}
	return p
}

// label applies the thresholds. Below TLow a flow is normal only once its
// evidence is settled (budget spent, flow closed or leaving); until then,
// and between the thresholds, it is unknown.
func (w *Worker) label(p float64, settled bool) classifier.Label {
	switch {
	case p >= w.model.THigh:
		return classifier.P2P
	case p <= w.model.TLow && settled:
		return classifier.Normal
	}
	return classifier.Unknown
}

// flowEnd reports f's final label and bytes to the host delta (a
// re-decided flow's bytes were reported with its first label).
func (w *Worker) flowEnd(f *Flow, confirmed, unanswered bool) {
	init, resp := w.endpoints(f)
	i := f.Initiator()
	up, down := f.Bytes[i], f.Bytes[1-i]
	if f.More&classifier.MoreRedecided != 0 {
		up, down = 0, 0
	}
	w.delta.FlowEnd(hostOf(f, init.Addr()), hostOf(f, resp.Addr()), f.Label, confirmed, up, down, unanswered)
}

// confirm reports the late answer of a p2p flow to the host delta.
func (w *Worker) confirm(f *Flow) {
	f.More |= classifier.MoreConfirmed
	init, resp := w.endpoints(f)
	w.delta.FlowConfirmed(hostOf(f, init.Addr()), hostOf(f, resp.Addr()))
}

// leave scores a flow one last time as it leaves the table and hands it on.
func (w *Worker) leave(f *Flow, why Reason) {
	h := w.hostContext(f)
	if f.Flags&classifier.FlagFinal == 0 {
		f.Label = w.label(w.score(f, &h), true)
		unanswered := f.Key.Proto == packet.ProtoTCP && f.Flags&classifier.FlagSynAck == 0 && f.Payloads() == 0
		w.flowEnd(f, f.Answered(), unanswered)
	}
	if w.Leave != nil {
		w.Leave(f, why, h)
	}
}
