package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"
)

// Blackhole is the BLACKHOLE community (RFC 7999, 65535:666): routers that
// honour it drop traffic to the announced prefix.
const Blackhole = 65535<<16 | 666

// BGPConfig is the embedded speaker that announces banned remote peers to
// the operator's routers as RTBH routes: each address a /32 or /128 with
// the BLACKHOLE community and a next hop the routers send to discard.
type BGPConfig struct {
	ASN      uint32
	RouterID string // an IPv4 address
	Peers    []BGPPeer
	NextHop  string // IPv4 next hop of the /32s (the routers map it to discard; default 192.0.2.1)
	NextHop6 string // IPv6 next hop of the /128s (default 100::1, RFC 6666's discard prefix)
	Max      int    // most announcements at once (default 10,000): past it, new bans are not announced, counted
	Rate     int    // most new announcements a second (default 100)
	Log      io.Writer
}

// BGPPeer is one router.
type BGPPeer struct {
	Address  string
	ASN      uint32
	Port     uint32 // default 179
	Password string // TCP MD5 (RFC 2385), when set
}

// Announcer keeps the routers told of this box's bans.
type Announcer struct {
	cfg BGPConfig
	s   *server.BgpServer
	mu  sync.Mutex
	on  map[netip.Addr]bool
	// token bucket for Rate
	tokens float64
	last   time.Time
	// Counters: announced and withdrawn routes, and bans not announced
	// because of Max or Rate.
	Announced, Withdrawn, OverMax, OverRate atomic.Uint64
}

// StartBGP starts the speaker and its sessions (they come up in the
// background; announcements made before are sent once they do).
func StartBGP(ctx context.Context, c BGPConfig) (*Announcer, error) {
	if c.ASN == 0 || len(c.Peers) == 0 {
		return nil, errors.New("cluster: bgp: want an ASN and at least one peer")
	}
	if _, err := netip.ParseAddr(c.RouterID); err != nil {
		return nil, fmt.Errorf("cluster: bgp: router id %q: %w", c.RouterID, err)
	}
	if c.NextHop == "" {
		c.NextHop = "192.0.2.1"
	}
	if c.NextHop6 == "" {
		c.NextHop6 = "100::1"
	}
	if c.Max <= 0 {
		c.Max = 10_000
	}
	if c.Rate <= 0 {
		c.Rate = 100
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	s := server.NewBgpServer(server.LoggerOption(&bgpLog{w: c.Log}))
	go s.Serve()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: c.ASN, RouterId: c.RouterID, ListenPort: -1}}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("cluster: bgp: %w", err)
	}
	for _, p := range c.Peers {
		port := p.Port
		if port == 0 {
			port = 179
		}
		peer := &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: p.Address, PeerAsn: p.ASN, AuthPassword: p.Password},
			Transport: &api.Transport{RemotePort: port},
			// A router that restarts has the routes again within seconds
			// (GoBGP retries a connection after 120 s by default).
			Timers: &api.Timers{Config: &api.TimersConfig{ConnectRetry: 5, HoldTime: 90, KeepaliveInterval: 30}},
			AfiSafis: []*api.AfiSafi{
				{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
				{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
			},
		}
		if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
			s.Stop()
			return nil, fmt.Errorf("cluster: bgp: peer %s: %w", p.Address, err)
		}
	}
	return &Announcer{cfg: c, s: s, on: map[netip.Addr]bool{}, tokens: float64(c.Rate), last: time.Now()}, nil
}

// Close withdraws nothing (the sessions' end withdraws every route) and
// stops the speaker.
func (a *Announcer) Close() { a.s.Stop() }

// Announce tells the routers to drop traffic to addr. Over Max
// announcements, or over Rate a second, it is not announced (counted; the
// box's own kernel map still bans it).
func (a *Announcer) Announce(ctx context.Context, addr netip.Addr) error {
	a.mu.Lock()
	if a.on[addr] {
		a.mu.Unlock()
		return nil
	}
	if len(a.on) >= a.cfg.Max {
		a.mu.Unlock()
		a.OverMax.Add(1)
		return nil
	}
	now := time.Now()
	a.tokens = min(float64(a.cfg.Rate), a.tokens+now.Sub(a.last).Seconds()*float64(a.cfg.Rate))
	a.last = now
	if a.tokens < 1 {
		a.mu.Unlock()
		a.OverRate.Add(1)
		return nil
	}
	a.tokens--
	a.on[addr] = true
	a.mu.Unlock()
	p, err := a.path(addr)
	if err == nil {
		_, err = a.s.AddPath(ctx, &api.AddPathRequest{Path: p})
	}
	if err != nil {
		a.mu.Lock()
		delete(a.on, addr)
		a.mu.Unlock()
		return fmt.Errorf("cluster: bgp: announce %s: %w", addr, err)
	}
	a.Announced.Add(1)
	return nil
}

// Withdraw takes addr's route back.
func (a *Announcer) Withdraw(ctx context.Context, addr netip.Addr) error {
	a.mu.Lock()
	on := a.on[addr]
	delete(a.on, addr)
	a.mu.Unlock()
	if !on {
		return nil
	}
	p, err := a.path(addr)
	if err == nil {
		err = a.s.DeletePath(ctx, &api.DeletePathRequest{Family: p.Family, Path: p})
	}
	if err != nil {
		return fmt.Errorf("cluster: bgp: withdraw %s: %w", addr, err)
	}
	a.Withdrawn.Add(1)
	return nil
}

// path is addr's RTBH route.
func (a *Announcer) path(addr netip.Addr) (*api.Path, error) {
	addr = addr.Unmap()
	origin, _ := anypb.New(&api.OriginAttribute{Origin: 0})
	comm, _ := anypb.New(&api.CommunitiesAttribute{Communities: []uint32{Blackhole}})
	if addr.Is4() {
		nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: addr.String(), PrefixLen: 32})
		nh, _ := anypb.New(&api.NextHopAttribute{NextHop: a.cfg.NextHop})
		return &api.Path{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Nlri: nlri, Pattrs: []*anypb.Any{origin, nh, comm}}, nil
	}
	fam := &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: addr.String(), PrefixLen: 128})
	mp, err := anypb.New(&api.MpReachNLRIAttribute{Family: fam, NextHops: []string{a.cfg.NextHop6}, Nlris: []*anypb.Any{nlri}})
	if err != nil {
		return nil, err
	}
	return &api.Path{Family: fam, Nlri: nlri, Pattrs: []*anypb.Any{origin, mp, comm}}, nil
}

// bgpLog passes GoBGP's warnings and errors on as lines; the rest is
// dropped.
type bgpLog struct {
	mu    sync.Mutex
	w     io.Writer
	level log.LogLevel
}

func (l *bgpLog) line(level, msg string, f log.Fields) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "swarmguard: bgp %s: %s %v\n", level, msg, f)
}
func (l *bgpLog) Panic(msg string, f log.Fields) { l.line("panic", msg, f) }
func (l *bgpLog) Fatal(msg string, f log.Fields) { l.line("fatal", msg, f) }
func (l *bgpLog) Error(msg string, f log.Fields) { l.line("error", msg, f) }
func (l *bgpLog) Warn(msg string, f log.Fields)  { l.line("warning", msg, f) }
func (l *bgpLog) Info(string, log.Fields)        {}
func (l *bgpLog) Debug(string, log.Fields)       {}
func (l *bgpLog) SetLevel(level log.LogLevel)    { l.level = level }
func (l *bgpLog) GetLevel() log.LogLevel         { return log.WarnLevel }
