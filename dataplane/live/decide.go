package live

import (
	"net/netip"
	"slices"
	"time"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/shard"
)

// Record is a live decision record (event_type "flow"): the classify flow
// record plus when it was decided, what was done, and whom it banned.
type Record struct {
	Time      string `json:"time"`
	EventType string `json:"event_type"`
	FlowID    uint64 `json:"flow_id"`
	Start     string `json:"start"` // the flow's first packet
	shard.FlowRecord
	Action string `json:"action"`
	Ban    string `json:"ban,omitempty"`
	// BanExpires is when the ban ends (RFC 3339).
	BanExpires string `json:"ban_expires,omitempty"`
}

// IsFlow tells a flow record from the log's other events (a record
// written before event types existed is a flow's).
func (r *Record) IsFlow() bool { return r.EventType == "" || r.EventType == EvFlow }

// Event is a record of the decision log other than a flow's: a ban, an
// unban, a host turned p2p, the kernel failing open. Notices (webhooks)
// get the same events.
type Event struct {
	Time      string              `json:"time"`
	EventType string              `json:"event_type"` // ban, unban, host, failopen
	Host      string              `json:"host,omitempty"`
	Peer      string              `json:"peer,omitempty"`    // ban: the local end of the flow that proved it
	FlowID    uint64              `json:"flow_id,omitempty"` // ban: the flow that proved it
	Label     string              `json:"label,omitempty"`
	P         float64             `json:"p,omitempty"`
	Reasons   []classifier.Reason `json:"reasons,omitempty"`
	Expires   string              `json:"ban_expires,omitempty"`
	Reason    string              `json:"reason,omitempty"`  // unban: expired; failopen: why
	Packets   uint64              `json:"packets,omitempty"` // failopen: packets the kernel forwarded itself
}

// Event types.
const (
	EvFlow     = "flow"
	EvBan      = "ban"
	EvUnban    = "unban"
	EvHost     = "host"
	EvFailOpen = "failopen"
)

// flowID names one flow of the log: its key and first packet time, hashed
// (FNV-1a), the same for both directions.
func flowID(f *shard.Flow) uint64 {
	k := kernelKey(&f.Key)
	h := uint64(14695981039346656037)
	mix := func(b []byte) {
		for _, c := range b {
			h = (h ^ uint64(c)) * 1099511628211
		}
	}
	mix(k.Lo[:])
	mix(k.Hi[:])
	for _, x := range []uint64{uint64(k.LoPort), uint64(k.HiPort), uint64(k.PathLo), uint64(k.Proto), uint64(k.PathHi), uint64(f.First)} {
		for i := 0; i < 8; i++ {
			mix([]byte{byte(x >> (8 * i))})
		}
	}
	return h
}

// topReasons keeps the first n reasons (they come sorted by weight).
func topReasons(rs []classifier.Reason, n int) []classifier.Reason {
	if len(rs) > n {
		return rs[:n]
	}
	return rs
}

// Actions in records.
const (
	ActBypass = "bypass" // normal: later packets stay in the kernel
	ActDrop   = "drop"   // p2p: dropped in the kernel from now on
	ActBan    = "drop+ban"
	ActAllow  = "allow" // p2p but allow-listed
	ActLog    = "log"   // p2p, monitor-only
)

// apply turns a final label into kernel state and a record.
func (r *Runner) apply(d *decision) {
	f := &d.flow
	lo, hi := f.Key.Endpoint(0), f.Key.Endpoint(1)
	k := kernelKey(&f.Key)
	now := time.Now().UTC()
	rec := Record{Time: now.Format(time.RFC3339Nano), EventType: EvFlow, FlowID: flowID(f), Start: time.Unix(0, f.First).UTC().Format(time.RFC3339Nano), FlowRecord: shard.NewFlowRecord("", f, r.cfg.Model, &d.host, true)}
	rec.SetOuter(d.outer)
	normal := bpf.Forward
	if r.cfg.Monitor != "" {
		normal = bpf.Pass
	}
	// A tunnelled flow's entry serves when the program opens its tunnel
	// (PPPoE, IPv4 IP-in-IP, GRE, GTP-U, VXLAN); other tunnels reach the
	// worker, which passes or drops the flow itself.
	switch {
	case f.Label != classifier.P2P:
		rec.Action = ActBypass
		if !r.harness.NoBypass {
			r.bypass(k, normal)
		}
	case r.allowed(lo, hi):
		rec.Action = ActAllow
		r.bypass(k, normal)
	case r.cfg.MonitorOnly:
		rec.Action = ActLog
	default:
		rec.Action = ActDrop
		r.bypass(k, bpf.Drop)
		// Only flow-level evidence bans: the other side answered, so no
		// single spoofed packet can get anybody banned; and only a peer
		// flow: a tracker's or DHT node's server is not a peer.
		if f.Answered() && classifier.PeerFlow(&f.FlowState) {
			if target, peer, ok := r.banTarget(f, lo, hi); ok {
				until := bpf.Monotonic() + uint64(r.cfg.BanFor)
				if err := r.objs.Ban(target, until); err != nil {
					r.count(func(s *Stats) { s.BanErrors++ })
					r.errs.log(r.cfg.Log, "ban", err)
				} else {
					r.noteExpiry(until)
					exp := now.Add(r.cfg.BanFor).Format(time.RFC3339)
					rec.Action, rec.Ban, rec.BanExpires = ActBan, target.String(), exp
					r.count(func(s *Stats) { s.Bans++ })
					r.event(&Event{Time: rec.Time, EventType: EvBan, Host: target.String(), Peer: peer.String(), FlowID: rec.FlowID,
						Label: rec.Label, P: rec.P, Reasons: topReasons(rec.Reasons, 3), Expires: exp})
				}
			}
		}
	}
	r.count(func(s *Stats) { s.Decisions++; s.ByLabel[f.Label]++ })
	if err := r.enc.Encode(&rec); err != nil {
		r.count(func(s *Stats) { s.RecordErrors++ })
		r.errs.log(r.cfg.Log, "records", err)
	}
	if r.cfg.OnRecord != nil {
		r.cfg.OnRecord(&rec)
	}
	if len(d.audit) > 0 && r.cfg.OnAudit != nil {
		r.cfg.OnAudit(&rec, d.audit)
	}
}

// event writes a non-flow event to the log and hands it to Notify.
func (r *Runner) event(e *Event) {
	if err := r.enc.Encode(e); err != nil {
		r.count(func(s *Stats) { s.RecordErrors++ })
		r.errs.log(r.cfg.Log, "records", err)
	}
	if r.cfg.Notify != nil {
		r.cfg.Notify(e)
	}
}

// bypass hands flow k to the kernel with action a; a failure leaves the
// flow in userspace (still handled, only slower) and is counted and logged.
func (r *Runner) bypass(k bpf.FlowKey, a bpf.Action) {
	if err := r.objs.SetBypass(k, a); err != nil {
		r.count(func(s *Stats) { s.BypassErrors++ })
		r.errs.log(r.cfg.Log, "bypass", err)
		return
	}
	r.count(func(s *Stats) { s.Bypassed++ })
}

func (r *Runner) count(fn func(s *Stats)) {
	r.mu.Lock()
	fn(&r.stats)
	r.mu.Unlock()
}

func (r *Runner) allowed(a, b netip.AddrPort) bool {
	for _, e := range []netip.AddrPort{a, b} {
		if inAny(e.Addr(), r.cfg.AllowNets) || slices.Contains(r.cfg.AllowPorts, e.Port()) {
			return true
		}
	}
	return false
}

// banTarget picks whom a p2p flow bans: its remote peer (the endpoint
// outside the local networks), or with BanLocal its local host. When both
// or neither endpoint is local, the responder is the remote peer.
// The other end comes back as well: the peer the target talked to.
func (r *Runner) banTarget(f *shard.Flow, lo, hi netip.AddrPort) (target, other netip.Addr, ok bool) {
	loLocal, hiLocal := inAny(lo.Addr(), r.cfg.Local), inAny(hi.Addr(), r.cfg.Local)
	local, remote := lo.Addr(), hi.Addr()
	switch {
	case loLocal && !hiLocal:
	case hiLocal && !loLocal:
		local, remote = hi.Addr(), lo.Addr()
	default:
		init, resp := lo, hi
		if f.Initiator() == 1 {
			init, resp = hi, lo
		}
		local, remote = init.Addr(), resp.Addr()
	}
	t, o := remote, local
	if r.cfg.BanLocal {
		t, o = local, remote
	}
	if inAny(t, r.cfg.AllowNets) {
		return t, o, false
	}
	return t, o, true
}
