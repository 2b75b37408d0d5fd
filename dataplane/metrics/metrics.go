// Package metrics exports a running dataplane's counters in the Prometheus
// text format. The runner keeps its counters in plain integers on its own
// paths; a scrape reads a copy (live.Runner.Stats) and turns it into
// metrics, so the packet path pays nothing for being observed. No address
// or port is ever a label value: labels are bounded sets (action, worker,
// label, reason, port name).
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane/live"
)

// Source is what a scrape reads: a live.Runner.
type Source interface {
	Stats() live.Stats
	Ports() []live.Port
	BansActive() (int, error)
	Config() live.Config
}

// Extra adds counters kept outside the runner (webhooks, the decision
// log, reloads) to a scrape.
type Extra func(ch chan<- prometheus.Metric)

// Build labels swarmguard_build_info.
type Build struct{ Version, Revision, GoVersion string }

const ns = "swarmguard"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

var (
	dBuild      = desc("build_info", "The running build (value 1).", "version", "revision", "goversion")
	dStart      = desc("start_time_seconds", "When the dataplane started, Unix time.")
	dPort       = desc("port_info", "An attached port and how the kernel runs the XDP program on it (value 1).", "port", "xdp_mode")
	dKernel     = desc("kernel_packets_total", "Packets the XDP program handled, by what it did (summed over the per-CPU counters).", "action")
	dWRx        = desc("worker_received_frames_total", "Frames a worker's AF_XDP sockets received.", "worker")
	dWTx        = desc("worker_transmitted_frames_total", "Frames a worker forwarded to the other port.", "worker")
	dWTxFull    = desc("worker_transmit_full_total", "Frames a worker could not forward: tx ring or frames exhausted.", "worker")
	dWPackets   = desc("worker_packets_total", "Packets through a worker's engine, by path: decided (cached final label) or inspected (recognizers ran).", "worker", "path")
	dWDropped   = desc("worker_dropped_packets_total", "Packets of p2p flows a worker dropped.", "worker")
	dWSkipped   = desc("worker_unclassified_packets_total", "Packets a worker counted but did not classify, by reason.", "worker", "reason")
	dWRedecided = desc("worker_redecided_flows_total", "Flows a worker rescored because a host turned p2p.", "worker")
	dFlowsAct   = desc("flows_active", "Flows in the workers' tables.", "worker")
	dFlowsNew   = desc("flows_created_total", "Flows created.", "worker")
	dFlowsEvict = desc("flows_evicted_total", "Flows forced out of a full bucket.", "worker")
	dFlowsExp   = desc("flows_expired_total", "Flows that left at their idle limit.", "worker")
	dFlowsSided = desc("flows_sided_total", "Flows that reached four packets while being classified (shard.SidedAt), by whether those went both ways or one way only. A box that sees one direction of its traffic (asymmetric steering, docs/SCALEOUT.md) counts nearly all one way; contrib/prometheus-alerts.yml alerts on the share.", "worker", "sides")
	dFlowsShed  = desc("flows_shed_packets_total", "Packets of new flows over the worker's new-flow budget, passed uninspected (overload).", "worker")
	dBudget     = desc("userspace_budget_packets_per_second", "Each CPU's budget of packets to the workers, as adapted to what they take; over it the kernel sheds (0: no budget).")
	dTick       = desc("tick_duration_seconds", "How long the last tick took: the wait for the workers' hand-overs (at most 50 ms), the host merge and the snapshot publish.")
	dTickMax    = desc("tick_duration_max_seconds", "The longest tick so far.")
	dMerge      = desc("merge_duration_seconds", "How long the last tick's host merge and snapshot publish took (the tick is 100 ms).")
	dMergeMax   = desc("merge_duration_max_seconds", "The longest merge so far.")
	dHealed     = desc("healed_total", "What the control loop put back: the XDP program attached again, pinned objects pinned again, or failed to.", "what")
	dWithheld   = desc("heartbeats_withheld_total", "Heartbeats the watchdog withheld because a worker or the control loop made no progress.")
	dXSK        = desc("xsk_frames_total", "The kernel's AF_XDP socket statistics (XDP_STATISTICS), summed over the sockets.", "event")
	dHosts      = desc("hosts", "Hosts in the merged host state.")
	dHostsDrop  = desc("hosts_dropped_total", "Hosts left out of the host state to keep it within classifier.max_hosts: evicted (the least active go first, subscribers in policy.local_networks last), or shed (new hosts over a merge's budget of 4,096, a flood of new addresses).", "why")
	dGaveUp     = desc("host_lookups_gave_up_total", "Workers' host lookups that waited over 10 ms for the merger's deletions and read the host as unseen (a merger thread descheduled in the middle of one).")
	dPredicted  = desc("predicted_peers", "Peers predicted from tracker, DHT and PEX answers, within their TTL.")
	dReputed    = desc("reputed_peers", "Peers other boxes proved in confirmed p2p flows (cluster.nats), held as predicted peers of every host.")
	dBansActive = desc("bans_active", "Bans in the kernel map that have not expired.")
	dBansAdded  = desc("bans_added_total", "Bans written by decisions.")
	dBansExp    = desc("bans_expired_total", "Bans removed at their expiry.")
	dBypass     = desc("bypass_entries_written_total", "Decided flows handed to the kernel's bypass map.")
	dDecisions  = desc("decisions_total", "Final flow decisions, by label.", "label")
	dLost       = desc("decision_events_lost_total", "Decisions dropped because the control queue was full.")
	dLate       = desc("merge_late_ticks_total", "Merge ticks at which a worker had not handed its host delta over in time.")
	dSnapAge    = desc("snapshot_age_seconds", "Time since the host snapshot was last published.")
	dBeatAge    = desc("heartbeat_age_seconds", "Time since the kernel last took a heartbeat.")
	dFailOpen   = desc("fail_open", "1 while the heartbeat is older than the fail-open limit: the kernel forwards everything itself.")
	dFailLimit  = desc("fail_open_limit_seconds", "The heartbeat age after which the kernel fails open.")
	dErrors     = desc("control_errors_total", "Control-path failures, by kind.", "kind")
)

type collector struct {
	src   Source
	build Build
	extra []Extra
	now   func() time.Time
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	// Unchecked: the extras describe their own metrics at scrape time.
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	now := c.now()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	n := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	g(dBuild, 1, c.build.Version, c.build.Revision, c.build.GoVersion)
	g(dStart, float64(st.Started.UnixNano())/1e9)
	for _, p := range c.src.Ports() {
		g(dPort, 1, p.Name, p.Mode)
	}
	for k := bpf.Counter(0); k < bpf.NumCounters; k++ {
		n(dKernel, st.Kernel[k], k.String())
	}
	for _, w := range st.Workers {
		id := strconv.Itoa(w.Worker)
		n(dWRx, w.RxFrames, id)
		n(dWTx, w.TxFrames, id)
		n(dWTxFull, w.TxFull, id)
		n(dWPackets, w.Engine.Decided, id, "decided")
		n(dWPackets, w.Engine.Inspected, id, "inspected")
		n(dWDropped, w.Engine.Dropped, id)
		n(dWSkipped, w.Engine.Fragments, id, "fragment")
		n(dWSkipped, w.Engine.NotIP, id, "not_ip")
		n(dWSkipped, w.Engine.OtherL4, id, "other_l4")
		n(dWSkipped, w.Engine.Malformed, id, "malformed")
		n(dWSkipped, w.Engine.TooDeep, id, "too_deep")
		n(dWRedecided, w.Engine.Redecided, id)
		g(dFlowsAct, float64(w.Flows.Active), id)
		n(dFlowsNew, w.Flows.Created, id)
		n(dFlowsEvict, w.Flows.Evicted, id)
		n(dFlowsExp, w.Flows.Expired, id)
		n(dFlowsShed, w.Flows.Shed, id)
		n(dFlowsSided, w.Engine.Sided-w.Engine.OneSided, id, "both")
		n(dFlowsSided, w.Engine.OneSided, id, "one")
	}
	n(dXSK, st.XSKRxDropped, "rx_dropped")
	n(dXSK, st.XSKRxRingFull, "rx_ring_full")
	n(dXSK, st.XSKFillEmpty, "fill_ring_empty")
	n(dXSK, st.XSKTxEmpty, "tx_ring_empty")
	n(dXSK, st.XSKInvalid, "invalid_descriptor")
	g(dHosts, float64(st.Hosts))
	n(dHostsDrop, st.HostsEvicted, "evicted")
	n(dHostsDrop, st.HostsShed, "shed")
	n(dGaveUp, st.HostLookupsGaveUp)
	g(dPredicted, float64(st.Predicted))
	g(dReputed, float64(st.Reputed))
	if b, err := c.src.BansActive(); err == nil {
		g(dBansActive, float64(b))
	} else {
		ch <- prometheus.NewInvalidMetric(dBansActive, err)
	}
	n(dBansAdded, st.Bans)
	n(dBansExp, st.BansExpired)
	n(dBypass, st.Bypassed)
	for _, l := range []classifier.Label{classifier.Normal, classifier.P2P, classifier.Unknown} {
		n(dDecisions, st.ByLabel[l], l.String())
	}
	n(dLost, st.Lost)
	n(dWithheld, st.Withheld)
	n(dHealed, st.Reattached, "reattached")
	n(dHealed, st.Repinned, "repinned")
	n(dHealed, st.HealErrors, "failed")
	g(dBudget, float64(st.UserBudget))
	g(dTick, st.Tick.Seconds())
	g(dTickMax, st.TickMax.Seconds())
	g(dMerge, st.Merge.Seconds())
	g(dMergeMax, st.MergeMax.Seconds())
	n(dLate, st.Late)
	if !st.Snapshot.IsZero() {
		g(dSnapAge, now.Sub(st.Snapshot).Seconds())
	}
	limit := c.src.Config().FailOpen
	g(dFailLimit, limit.Seconds())
	if !st.Heartbeat.IsZero() {
		age := now.Sub(st.Heartbeat)
		g(dBeatAge, age.Seconds())
		open := 0.0
		if age > limit {
			open = 1
		}
		g(dFailOpen, open)
	}
	for _, e := range []struct {
		kind string
		v    uint64
	}{{"heartbeat", st.HeartbeatErrors}, {"bypass", st.BypassErrors}, {"ban", st.BanErrors}, {"record", st.RecordErrors},
		{"reconcile", st.ReconcileErrors}, {"fill", st.FillErrors}, {"kick", st.KickErrors}} {
		n(dErrors, e.v, e.kind)
	}
	for _, x := range c.extra {
		x(ch)
	}
}

// Handler serves /metrics for src, with the Go runtime's and the
// process's metrics beside swarmguard's.
func Handler(src Source, b Build, extra ...Extra) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{src: src, build: b, extra: extra, now: time.Now},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
