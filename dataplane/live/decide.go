package live

import (
	"net/netip"
	"slices"
	"time"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/shard"
)

// Record is a live decision record: the classify flow record plus when it
// was decided, what was done, and whom it banned.
type Record struct {
	Time  string `json:"time"`
	Start string `json:"start"` // the flow's first packet
	shard.FlowRecord
	Action string `json:"action"`
	Ban    string `json:"ban,omitempty"`
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
	rec := Record{Time: time.Now().UTC().Format(time.RFC3339Nano), Start: time.Unix(0, f.First).UTC().Format(time.RFC3339Nano), FlowRecord: shard.NewFlowRecord("", f, r.cfg.Model, &d.host, true)}
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
			if target, ok := r.banTarget(f, lo, hi); ok {
				if err := r.objs.Ban(target, bpf.Monotonic()+uint64(r.cfg.BanFor)); err != nil {
					r.count(func(s *Stats) { s.BanErrors++ })
					r.errs.log(r.cfg.Log, "ban", err)
				} else {
					rec.Action, rec.Ban = ActBan, target.String()
					r.count(func(s *Stats) { s.Bans++ })
				}
			}
		}
	}
	r.count(func(s *Stats) { s.Decisions++ })
	if err := r.enc.Encode(&rec); err != nil {
		r.count(func(s *Stats) { s.RecordErrors++ })
		r.errs.log(r.cfg.Log, "records", err)
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
func (r *Runner) banTarget(f *shard.Flow, lo, hi netip.AddrPort) (netip.Addr, bool) {
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
	t := remote
	if r.cfg.BanLocal {
		t = local
	}
	if inAny(t, r.cfg.AllowNets) {
		return t, false
	}
	return t, true
}
