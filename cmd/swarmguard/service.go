package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/cluster"
	"github.com/swarmguard/swarmguard/cmd/internal/audit"
	"github.com/swarmguard/swarmguard/cmd/internal/config"
	"github.com/swarmguard/swarmguard/cmd/internal/notify"
	"github.com/swarmguard/swarmguard/cmd/internal/rotate"
	"github.com/swarmguard/swarmguard/dataplane/live"
	"github.com/swarmguard/swarmguard/dataplane/metrics"
)

// service is `swarmguard run` as an appliance: the dataplane with its
// decision log, metrics endpoint, control socket, webhooks and reload.
type service struct {
	path   string      // configuration file, "" for none
	set    [][2]string // the command line's flags, applied over the file on every reload
	stderr io.Writer
	r      *live.Runner
	log    *rotate.File  // nil when the log is stdout
	audit  *audit.Writer // nil when auditing is off
	hooks  *notify.Hooks
	http   *http.Server
	sock   net.Listener
	// The ban bucket shared with the edge's other boxes (cluster.nats),
	// nil when this box is alone.
	cluster     *cluster.Sync
	events      *cluster.Events    // decision and ban events to the SG_EVENTS stream
	bgp         *cluster.Announcer // bans announced to the routers (bgp.peers), nil when off
	clusterBans *cluster.Bans
	peers       *cluster.Bans // the peer-reputation bucket
	peerQueue   chan cluster.Ban
	kernelBans  *bpf.Bans
	stopCluster context.CancelFunc
	clusterDone chan struct{}

	// reloading serializes reloads. It is never held by the runner's
	// control goroutine, which takes mu (notice, record): a reload holds
	// reloading, not mu, while it waits for that goroutine.
	reloading sync.Mutex
	mu        sync.Mutex // guards what follows
	conf      *config.Config
	recent    []live.Record // the last decisions, newest last
	bans      map[string]banNote
	reloads   struct {
		ok, failed uint64
		last       time.Time
		lastErr    string
	}
	rate rateSample
}

// banNote is why and when the running service banned an address.
type banNote struct {
	Set     time.Time           `json:"set"`
	Expires string              `json:"expires"`
	Peer    string              `json:"peer"`
	FlowID  uint64              `json:"flow_id"`
	Label   string              `json:"label"`
	P       float64             `json:"p"`
	Reasons []classifier.Reason `json:"reasons"`
}

// recentKept is how many decisions status shows.
const recentKept = 10

func startService(c *config.Config, path string, set [][2]string, cfg live.Config, stdout, stderr io.Writer) (s *service, err error) {
	s = &service{path: path, set: set, stderr: stderr, conf: c, bans: map[string]banNote{}}
	var undo []func()
	defer func() {
		if err != nil {
			slices.Reverse(undo)
			for _, u := range undo {
				u()
			}
		}
	}()
	cfg.Log = stderr
	cfg.Records = stdout
	if c.LogFile != "-" {
		if s.log, err = rotate.Open(c.LogFile, c.LogMaxSize, c.LogKeep); err != nil {
			return nil, err
		}
		cfg.Records = s.log
		undo = append(undo, func() { s.log.Close() })
	}
	// Listeners first: a busy port or a bad socket path fails before the
	// program is attached.
	var ml net.Listener
	if c.MetricsListen != "" {
		if ml, err = net.Listen("tcp", c.MetricsListen); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		undo = append(undo, func() { ml.Close() })
	}
	if c.StatusSocket != "" {
		if s.sock, err = listenControl(c.StatusSocket); err != nil {
			return nil, err
		}
		undo = append(undo, func() { s.sock.Close(); os.Remove(c.StatusSocket) })
	}
	if c.AuditDir != "" {
		if s.audit, err = audit.Open(c.AuditDir, c.AuditMaxSize, c.AuditKeep, live.AuditSnap); err != nil {
			return nil, err
		}
		undo = append(undo, func() { s.audit.Close() })
		cfg.Audit, cfg.OnAudit = c.AuditPackets, s.auditFlow
		fmt.Fprintf(stderr, "swarmguard: audit capture %s\n", s.audit.Path())
	}
	// Always there, without URLs when none are set: a reload may add some.
	s.hooks = notify.New(c.Webhooks, notify.Options{Timeout: c.WebhookTimeout, Retries: c.WebhookRetries, Queue: c.WebhookQueue, Log: stderr})
	undo = append(undo, s.hooks.Close)
	cfg.Notify = s.notice
	cfg.OnRecord = s.record
	if s.r, err = live.Start(cfg); err != nil {
		return nil, err
	}
	undo = append(undo, func() { s.r.Stop() })
	if len(c.ClusterNATS) > 0 {
		if err = s.startCluster(c, stderr); err != nil {
			return nil, err
		}
	}
	if c.BGPASN != 0 && len(c.BGPPeers) > 0 {
		if err = s.startBGP(c, stderr); err != nil {
			return nil, err
		}
	}
	if ml != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler(s.r, buildInfo(), s.extraMetrics))
		mux.HandleFunc("/status", s.httpStatus)
		s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go s.http.Serve(ml)
		fmt.Fprintf(stderr, "swarmguard: metrics on http://%s/metrics\n", ml.Addr())
	}
	if s.sock != nil {
		go s.serveControl()
		fmt.Fprintf(stderr, "swarmguard: control socket %s\n", c.StatusSocket)
	}
	return s, nil
}

// stop stops the dataplane, then the endpoints, and prints the totals.
func (s *service) stop() error {
	err := s.r.Stop()
	if s.bgp != nil {
		s.bgp.Close() // the sessions' end withdraws every route
	}
	if s.stopCluster != nil {
		s.stopCluster()
		<-s.clusterDone
		s.clusterBans.Close()
		s.peers.Close()
		s.kernelBans.Close()
	}
	if s.http != nil {
		s.http.Close()
	}
	if s.sock != nil {
		s.sock.Close()
		os.Remove(s.sock.Addr().String())
	}
	s.hooks.Close()
	if s.audit != nil {
		if cerr := s.audit.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if s.log != nil {
		if cerr := s.log.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	st := s.r.Stats()
	fmt.Fprintf(s.stderr, "swarmguard: stopped: %d packets in workers, %d forwarded by workers, kernel %v, %d decisions, %d bans\n",
		st.Worker.Packets, st.TxFrames, kernelCounters(st.Kernel), st.Decisions, st.Bans)
	return err
}

// reload re-reads the file and the weights under the command line's
// flags. A bad configuration changes nothing; keys that need a restart
// keep their running values, each named in the log.
func (s *service) reload(why string) error {
	if s.log != nil {
		s.log.Reopen()
	}
	n, errs := config.Load(s.path, s.set)
	var cfg live.Config
	if len(errs) == 0 {
		var err error
		if cfg, err = liveConfig(n); err != nil {
			errs = append(errs, err)
		}
	}
	s.reloading.Lock()
	defer s.reloading.Unlock()
	if len(errs) > 0 {
		s.mu.Lock()
		s.reloads.failed++
		s.reloads.lastErr = errors.Join(errs...).Error()
		s.mu.Unlock()
		for _, e := range errs {
			fmt.Fprintf(s.stderr, "swarmguard: %s: reload rejected, the running configuration stays: %s%v\n", why, where(s.path), e)
		}
		return fmt.Errorf("reload rejected: %w", problems(s.path, errs))
	}
	s.mu.Lock()
	old := s.conf
	s.mu.Unlock()
	for _, k := range old.RestartOnly(n) {
		fmt.Fprintf(s.stderr, "swarmguard: %s: %s changes only on restart; keeping the running value\n", why, k)
	}
	old.KeepRestartOnly(n)
	ch, err := s.r.Reconfigure(cfg.Policy())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reloads.last = time.Now()
	if err != nil {
		s.reloads.failed++
		s.reloads.lastErr = err.Error()
		fmt.Fprintf(s.stderr, "swarmguard: %s: reload failed: %v\n", why, err)
		return err
	}
	if s.log != nil {
		s.log.SetLimits(n.LogMaxSize, n.LogKeep)
	}
	if s.audit != nil {
		s.audit.SetLimits(n.AuditMaxSize, n.AuditKeep)
	}
	s.hooks.SetURLs(n.Webhooks, n.WebhookTimeout, n.WebhookRetries)
	s.conf = n
	s.reloads.ok++
	s.reloads.lastErr = ""
	fmt.Fprintf(s.stderr, "swarmguard: %s: reloaded %s (%d dropped flows released, %d bans lifted)\n", why, orFlags(s.path), ch.Released, ch.Unbanned)
	return nil
}

func where(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

func orFlags(path string) string {
	if path == "" {
		return "the command line (no configuration file)"
	}
	return path
}

// notice keeps the ban book and sends webhooks; it runs on the runner's
// control goroutine and never blocks.
func (s *service) notice(e *live.Event) {
	s.mu.Lock()
	switch e.EventType {
	case live.EvBan:
		s.bans[e.Host] = banNote{Set: time.Now(), Expires: e.Expires, Peer: e.Peer, FlowID: e.FlowID, Label: e.Label, P: e.P, Reasons: e.Reasons}
		s.share(e)
	case live.EvUnban:
		delete(s.bans, e.Host)
		s.withdraw(e)
	}
	s.mu.Unlock()
	if s.events != nil {
		if b, err := json.Marshal(e); err == nil {
			s.events.Send(e.EventType, b)
		}
	}
	if e.EventType == live.EvFailOpen {
		return
	}
	n := &notify.Notice{Event: e.EventType, Time: e.Time, Host: e.Host, Peer: e.Peer, Label: e.Label, P: e.P, Expires: e.Expires, Reason: e.Reason}
	n.Box, _ = os.Hostname()
	for _, r := range e.Reasons {
		n.Reasons = append(n.Reasons, r.Feature)
	}
	s.hooks.Send(n)
}

// auditFlow writes a p2p flow's first frames to the audit capture, the
// decision on its first packet as a comment.
func (s *service) auditFlow(r *live.Record, frames []live.AuditFrame) {
	comment := fmt.Sprintf("swarmguard flow_id=%016x %s %s %s label=%s p=%.3f action=%s", r.FlowID, r.Proto, r.A, r.B, r.Label, r.P, r.Action)
	if r.Ban != "" {
		comment += fmt.Sprintf(" ban=%s until %s", r.Ban, r.BanExpires)
	}
	comment += " reasons: " + reasonList(r.Reasons, 5)
	fs := make([]audit.Frame, len(frames))
	for i, f := range frames {
		fs[i] = audit.Frame{Time: time.Unix(0, f.Time), Len: f.Len, Frame: f.Frame}
	}
	if err := s.audit.Flow(comment, fs); err != nil {
		fmt.Fprintf(s.stderr, "swarmguard: %v\n", err)
	}
}

// record keeps the last decisions for status.
func (s *service) record(r *live.Record) {
	if s.events != nil {
		if b, err := json.Marshal(r); err == nil {
			s.events.Send("decision", b)
		}
	}
	s.mu.Lock()
	if len(s.recent) == recentKept {
		copy(s.recent, s.recent[1:])
		s.recent = s.recent[:recentKept-1]
	}
	s.recent = append(s.recent, *r)
	s.mu.Unlock()
}

var (
	dHooks   = prometheus.NewDesc("swarmguard_webhook_notices_total", "Webhook notices, by outcome: sent, failed (retries spent), dropped (queue full).", []string{"outcome"}, nil)
	dRetries = prometheus.NewDesc("swarmguard_webhook_retries_total", "Webhook POSTs retried.", nil, nil)
	dReloads = prometheus.NewDesc("swarmguard_reloads_total", "Configuration reloads, by result.", []string{"result"}, nil)
	dLogRot  = prometheus.NewDesc("swarmguard_log_rotations_total", "Decision log files rotated by size.", nil, nil)
	dAudit   = prometheus.NewDesc("swarmguard_audit_flows_total", "p2p flows written to the audit capture.", nil, nil)

	dBGP           = prometheus.NewDesc("swarmguard_bgp_routes_total", "RTBH routes of this box's bans: announced, withdrawn, and bans not announced (over_max, over_rate).", []string{"outcome"}, nil)
	dClusterEvents = prometheus.NewDesc("swarmguard_cluster_events_total", "Events for the SG_EVENTS stream: published, dropped (queue full, the oldest first).", []string{"outcome"}, nil)
	dClusterUp     = prometheus.NewDesc("swarmguard_cluster_connected", "1 while the connection to NATS (cluster.nats) is up.", nil, nil)
	dClusterQueued = prometheus.NewDesc("swarmguard_cluster_queued", "This box's bans and events waiting for NATS (bounded queues: while NATS is away they fill, then drop the oldest events or the newest bans, counted).", []string{"what"}, nil)
	dClusterBans   = prometheus.NewDesc("swarmguard_cluster_bans_total", "Shared bans, by what became of them: applied (another box's, into the kernel map), removed (ended), published (this box's), dropped (queue full), refused (allow-listed or local), malformed, kernel_error.", []string{"outcome"}, nil)
)

// extraMetrics adds the service's own counters to a scrape.
func (s *service) extraMetrics(ch chan<- prometheus.Metric) {
	c := s.hooks.Counts()
	cm := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	cm(dHooks, c.Sent, "sent")
	cm(dHooks, c.Failed, "failed")
	cm(dHooks, c.Dropped, "dropped")
	cm(dRetries, c.Retried)
	s.mu.Lock()
	ok, failed := s.reloads.ok, s.reloads.failed
	s.mu.Unlock()
	cm(dReloads, ok, "ok")
	cm(dReloads, failed, "rejected")
	if s.log != nil {
		rot, _ := s.log.Counts()
		cm(dLogRot, rot)
	}
	if s.audit != nil {
		flows, _ := s.audit.Counts()
		cm(dAudit, flows)
	}
	if s.cluster != nil {
		up := 0.0
		if s.clusterBans.Connected() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(dClusterUp, prometheus.GaugeValue, up)
		ch <- prometheus.MustNewConstMetric(dClusterQueued, prometheus.GaugeValue, float64(s.cluster.Queued()), "bans")
		ch <- prometheus.MustNewConstMetric(dClusterQueued, prometheus.GaugeValue, float64(s.events.Queued()), "events")
		for _, c := range []struct {
			what string
			n    uint64
		}{{"applied", s.cluster.Applied.Load()}, {"removed", s.cluster.Removed.Load()}, {"published", s.cluster.Published.Load()},
			{"dropped", s.cluster.Dropped.Load()}, {"refused", s.clusterBans.Refused.Load()}, {"malformed", s.clusterBans.Malformed.Load()},
			{"kernel_error", s.cluster.KernelErrors.Load()}} {
			cm(dClusterBans, c.n, c.what)
		}
		cm(dClusterEvents, s.events.Published.Load(), "published")
		cm(dClusterEvents, s.events.Dropped.Load(), "dropped")
	}
	if s.bgp != nil {
		cm(dBGP, s.bgp.Announced.Load(), "announced")
		cm(dBGP, s.bgp.Withdrawn.Load(), "withdrawn")
		cm(dBGP, s.bgp.OverMax.Load(), "over_max")
		cm(dBGP, s.bgp.OverRate.Load(), "over_rate")
	}
}

func buildInfo() metrics.Build {
	b := metrics.Build{Version: "unknown", Revision: "unknown", GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		b.Version = bi.Main.Version
		for _, st := range bi.Settings {
			if st.Key == "vcs.revision" {
				b.Revision = st.Value
			}
		}
	}
	return b
}

// notifySystemd tells systemd (Type=notify) about the service's state; it
// does nothing outside systemd.
func notifySystemd(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}

// listenControl opens the control socket, root only: the directory 0750,
// the socket 0600. A stale socket of a dead run is removed; a live one is
// an error.
func listenControl(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another swarmguard is running", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return l, nil
}

// rateSample is the kernel's packet counter at a time, for rates.
type rateSample struct {
	at       time.Time
	rx, xsk  uint64
	pps      float64
	userside float64
}

// startCluster joins the edge's shared ban bucket (docs/SCALEOUT.md): this
// box's bans go out, the others' come into its kernel ban map (the pinned
// one the runner uses), never one for an allow-listed address
// (policy.allow_nets).
// NATS need not be there: the connection is made in the background.
func (s *service) startCluster(c *config.Config, stderr io.Writer) error {
	box := c.ClusterBox
	if box == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("cluster: box name: %w", err)
		}
		box = strings.NewReplacer(".", "-", " ", "-").Replace(h)
	}
	allow := slices.Clone(c.AllowNets)
	refuse := func(a netip.Addr) bool {
		for _, p := range allow {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc := cluster.Config{URLs: c.ClusterNATS, Box: box, User: c.ClusterUser, Password: c.ClusterPassword, Replicas: c.ClusterReplicas, Refuse: refuse,
		TLSCA: c.ClusterTLSCA, TLSCert: c.ClusterTLSCert, TLSKey: c.ClusterTLSKey, NkeySeed: c.ClusterNkeySeed}
	bans, err := cluster.OpenBans(ctx, cc)
	if err != nil {
		return err
	}
	peers, err := cluster.OpenPeers(ctx, cc)
	if err != nil {
		bans.Close()
		return err
	}
	kb, err := bpf.OpenBans(c.Pin)
	if err != nil {
		bans.Close()
		peers.Close()
		return fmt.Errorf("cluster: %w", err)
	}
	s.clusterBans, s.kernelBans, s.peers = bans, kb, peers
	s.peerQueue = make(chan cluster.Ban, cluster.QueueLen)
	s.cluster = cluster.NewSync(bans, kb)
	s.events = cluster.NewEvents(bans, cluster.QueueLen)
	run, stop := context.WithCancel(context.Background())
	s.stopCluster, s.clusterDone = stop, make(chan struct{})
	go func() {
		defer close(s.clusterDone)
		done := make(chan struct{})
		go func() { s.events.Run(run); close(done) }()
		reputed := make(chan struct{})
		go func() { s.watchPeers(run, box); close(reputed) }()
		s.cluster.Run(run)
		<-done
		<-reputed
	}()
	fmt.Fprintf(stderr, "swarmguard: sharing bans as %s through %s\n", box, strings.Join(c.ClusterNATS, ","))
	return nil
}

// share hands this box's new ban to the cluster and the routers (the
// service's lock held).
func (s *service) share(e *live.Event) {
	a, err := netip.ParseAddr(e.Host)
	if err != nil {
		return
	}
	if s.bgp != nil {
		if err := s.bgp.Announce(context.Background(), a); err != nil {
			fmt.Fprintf(s.stderr, "swarmguard: %v\n", err)
		}
	}
	if s.cluster == nil {
		return
	}
	exp, err := time.Parse(time.RFC3339, e.Expires)
	if err != nil {
		return
	}
	reason := e.Label
	for i, r := range e.Reasons {
		if i == 3 {
			break
		}
		reason += " " + r.Feature
	}
	s.cluster.Local(cluster.Ban{Addr: a, Expires: exp, Reason: strings.TrimSpace(reason)})
	// The banned peer took part in a confirmed p2p flow: its reputation
	// goes to the others, for their flows to it (a bounded queue: a full
	// one drops it, the ban itself is shared anyway).
	select {
	case s.peerQueue <- cluster.Ban{Addr: a, Expires: time.Now().Add(cluster.PeerTTL), Reason: "confirmed p2p"}:
	default:
	}
}

// watchPeers hands the peers other boxes proved to the runner, and this
// box's to the bucket, until ctx ends (the watch is made again when it
// fails).
func (s *service) watchPeers(ctx context.Context, box string) {
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-s.peerQueue:
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_ = s.peers.Publish(pctx, b) // lost if NATS stays away: reputation is a hint
				cancel()
			}
		}
	}()
	for ctx.Err() == nil {
		err := s.peers.Watch(ctx, func(b cluster.Ban) {
			if b.Origin != box {
				s.r.AddReputation(b.Addr, b.Expires)
			}
		}, func(netip.Addr) {})
		if err != nil && ctx.Err() == nil {
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// startBGP starts the speaker that announces this box's bans to the
// routers as RTBH routes (docs/SCALEOUT.md).
func (s *service) startBGP(c *config.Config, stderr io.Writer) error {
	bc := cluster.BGPConfig{ASN: uint32(c.BGPASN), RouterID: c.BGPRouterID, Max: c.BGPMax, Rate: c.BGPRate, Log: stderr}
	for _, p := range c.BGPPeers {
		addr, port, asn, err := config.BGPPeer(p)
		if err != nil {
			return err
		}
		bc.Peers = append(bc.Peers, cluster.BGPPeer{Address: addr, Port: port, ASN: asn, Password: c.BGPPassword})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := cluster.StartBGP(ctx, bc)
	if err != nil {
		return err
	}
	s.bgp = a
	fmt.Fprintf(stderr, "swarmguard: announcing bans to %s as AS %d\n", strings.Join(c.BGPPeers, ","), c.BGPASN)
	return nil
}

// withdraw takes an ended ban's route back (the service's lock held; the
// speaker's calls do not block on the network).
func (s *service) withdraw(e *live.Event) {
	if s.bgp == nil {
		return
	}
	if a, err := netip.ParseAddr(e.Host); err == nil {
		if err := s.bgp.Withdraw(context.Background(), a); err != nil {
			fmt.Fprintf(s.stderr, "swarmguard: %v\n", err)
		}
	}
}
