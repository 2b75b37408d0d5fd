package live

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/classifier"
)

// Policy is what a reload may change while flows, bans, host state and
// counters stay: what a p2p decision does, who is never touched, and the
// model (weights and thresholds).
type Policy struct {
	MonitorOnly bool
	BanFor      time.Duration
	BanLocal    bool
	Local       []netip.Prefix
	AllowNets   []netip.Prefix
	AllowPorts  []uint16
	Model       *classifier.Model
}

// Changes reports what applying a policy did to the kernel's state.
type Changes struct {
	Released int // drop entries turned back to forwarding (allow-listed now, or monitor-only)
	Unbanned int // bans lifted because their address is allow-listed now
}

type reconf struct {
	p    Policy
	done chan result
}

type result struct {
	c   Changes
	err error
}

// Reconfigure applies p at once: the control goroutine takes it between
// two decisions, so every decision is made under one policy. Flows that
// are dropped and now allowed (or all of them, in monitor-only) are
// forwarded again, and bans of allow-listed addresses are lifted (each an
// unban event). Workers take a new model at their next poll.
func (r *Runner) Reconfigure(p Policy) (Changes, error) {
	if p.Model == nil || p.BanFor <= 0 {
		return Changes{}, fmt.Errorf("reconfigure: want a model and a positive ban duration")
	}
	req := reconf{p: p, done: make(chan result, 1)}
	select {
	case r.reconf <- req:
	case <-time.After(5 * time.Second):
		return Changes{}, fmt.Errorf("reconfigure: the control loop did not take the new policy within 5 s")
	}
	res := <-req.done
	return res.c, res.err
}

// applyPolicy runs on the control goroutine.
func (r *Runner) applyPolicy(p Policy) (Changes, error) {
	r.mu.Lock()
	r.cfg.MonitorOnly, r.cfg.BanFor, r.cfg.BanLocal = p.MonitorOnly, p.BanFor, p.BanLocal
	r.cfg.Local, r.cfg.AllowNets, r.cfg.AllowPorts = p.Local, p.AllowNets, p.AllowPorts
	r.cfg.Model = p.Model
	r.mu.Unlock()
	r.monitorOnly.Store(p.MonitorOnly)
	r.engine.SetModel(p.Model)
	r.engine.Merger().SetLocal(p.Local) // the merge runs on this goroutine too
	var ch Changes
	normal := bpf.Forward
	if r.cfg.Monitor != "" {
		normal = bpf.Pass
	}
	var release []bpf.FlowKey
	err := r.objs.RangeBypass(func(k bpf.FlowKey, a bpf.Action) {
		if a != bpf.Drop {
			return
		}
		lo := netip.AddrPortFrom(netip.AddrFrom16(k.Lo).Unmap(), k.LoPort)
		hi := netip.AddrPortFrom(netip.AddrFrom16(k.Hi).Unmap(), k.HiPort)
		if p.MonitorOnly || r.allowed(lo, hi) {
			release = append(release, k)
		}
	})
	if err != nil {
		return ch, err
	}
	for _, k := range release {
		if err := r.objs.SetBypass(k, normal); err != nil {
			return ch, err
		}
		ch.Released++
	}
	bans, err := r.objs.BanList()
	if err != nil {
		return ch, err
	}
	at := time.Now().UTC().Format(time.RFC3339Nano)
	for a := range bans {
		if inAny(a, p.AllowNets) || p.MonitorOnly {
			if err := r.objs.Unban(a); err != nil {
				return ch, err
			}
			ch.Unbanned++
			reason := "allow-listed"
			if p.MonitorOnly {
				reason = "monitor-only"
			}
			r.event(&Event{Time: at, EventType: EvUnban, Host: a.String(), Reason: reason})
		}
	}
	if ch.Unbanned > 0 {
		if err := r.objs.TouchBans(); err != nil {
			return ch, err
		}
	}
	return ch, nil
}

// Policy is c's reloadable part: what Reconfigure takes.
func (c *Config) Policy() Policy {
	return Policy{MonitorOnly: c.MonitorOnly, BanFor: c.BanFor, BanLocal: c.BanLocal,
		Local: slices.Clone(c.Local), AllowNets: slices.Clone(c.AllowNets), AllowPorts: slices.Clone(c.AllowPorts), Model: c.Model}
}

// Policy returns the policy in force.
func (r *Runner) Policy() Policy {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg.Policy()
}
