// Package cluster shares what one swarmguard box has proven with the others
// through NATS JetStream (docs/SCALEOUT.md). This first part is the ban
// bucket: a box writes its bans into a key-value bucket with a per-key
// TTL that ends with the ban, and every box watches the bucket and applies
// the others' bans, refusing any for an address it must never block.
package cluster

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BanBucket is the key-value bucket of bans; PeerBucket the one of peer
// reputation: remote addresses of confirmed p2p flows, for PeerTTL.
const (
	BanBucket  = "sg-bans"
	PeerBucket = "sg-peers"
	PeerTTL    = 30 * time.Minute
)

// Ban is one ban as the bucket holds it.
type Ban struct {
	Addr    netip.Addr
	Expires time.Time // when the ban ends everywhere
	Origin  string    // the box that made it
	Reason  string    // a short summary of its evidence
}

// Config connects a box to the cluster.
type Config struct {
	URLs     []string // NATS servers (nats://host:port)
	Box      string   // this box's name: the origin of its bans
	User     string   // user and password, when the servers want them
	Password string
	// TLS: the CA file that signed the servers' certificates (the
	// connection is then TLS and verified), and this box's certificate
	// and key files when the servers want client certificates.
	TLSCA, TLSCert, TLSKey string
	// NkeySeed is the file of this box's nkey seed (nsc, nk -gen user),
	// when the servers authenticate boxes by nkey.
	NkeySeed string
	Replicas int // copies of the bucket in the cluster (default 1; 3 for a 3-node cluster)
	// Refuse, if set, reports addresses this box never blocks whoever
	// banned them (its allow-listed and local networks).
	Refuse func(netip.Addr) bool
}

// Bans is a box's view of the shared ban bucket.
type Bans struct {
	name string // the bucket
	cfg  Config
	nc   *nats.Conn
	js   jetstream.JetStream
	mu   sync.Mutex
	kv   jetstream.KeyValue // nil until the bucket is reached (ensure)
	// Refused counts others' bans not applied (Config.Refuse), Malformed
	// entries that are not bans (a key or value this package did not
	// write).
	Refused, Malformed atomic.Uint64
}

// OpenBans connects to NATS. A box starts whether NATS is there or not:
// the connection is made, and made again, in the background, and the
// bucket is made (or found) on first use.
func OpenBans(ctx context.Context, c Config) (*Bans, error) { return openBucket(ctx, c, BanBucket) }

// OpenPeers is OpenBans for the peer-reputation bucket: the same entries
// (an address, an expiry, the box, a reason), each for PeerTTL.
func OpenPeers(ctx context.Context, c Config) (*Bans, error) { return openBucket(ctx, c, PeerBucket) }

func openBucket(ctx context.Context, c Config, name string) (*Bans, error) {
	if c.Box == "" || strings.ContainsAny(c.Box, " .*>") {
		return nil, fmt.Errorf("cluster: box name %q: want a name without spaces, dots, * or >", c.Box)
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	opts := []nats.Option{nats.Name("swarmguard " + c.Box), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), nats.RetryOnFailedConnect(true)}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.NkeySeed != "" {
		o, err := nats.NkeyOptionFromSeed(c.NkeySeed)
		if err != nil {
			return nil, fmt.Errorf("cluster: nkey seed: %w", err)
		}
		opts = append(opts, o)
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	nc, err := nats.Connect(strings.Join(c.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to %s: %w", strings.Join(c.URLs, ","), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	b := &Bans{name: name, cfg: c, nc: nc, js: js}
	// At once when NATS is there; else on first use (a box starts without
	// waiting for NATS).
	if nc.IsConnected() {
		bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _ = b.bucket(bctx)
		cancel()
	}
	return b, nil
}

// Connected reports whether the connection to NATS is up.
func (b *Bans) Connected() bool { return b.nc.IsConnected() }

// bucket makes or finds the ban bucket, once.
func (b *Bans) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kv != nil {
		return b.kv, nil
	}
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:   b.name,
		History:  1,
		Replicas: b.cfg.Replicas,
		Storage:  jetstream.FileStorage,
		// Per-key TTLs (a ban's own end), and markers when one passes so
		// that watchers hear of it.
		LimitMarkerTTL: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: ban bucket: %w", err)
	}
	b.kv = kv
	return kv, nil
}

// Close disconnects.
func (b *Bans) Close() { b.nc.Close() }

// banValue is a ban's value in the bucket.
type banValue struct {
	Expires int64  `json:"expires_unix_ns"`
	Origin  string `json:"origin"`
	Reason  string `json:"reason,omitempty"`
}

// minTTL is the shortest per-key TTL the server takes.
const minTTL = time.Second

// Publish writes this box's ban into the bucket, with a TTL that ends
// with it. A ban already over is not written.
func (b *Bans) Publish(ctx context.Context, ban Ban) error {
	ttl := time.Until(ban.Expires)
	if ttl <= 0 {
		return nil
	}
	if _, err := b.bucket(ctx); err != nil {
		return err
	}
	v, err := json.Marshal(banValue{Expires: ban.Expires.UnixNano(), Origin: b.cfg.Box, Reason: ban.Reason})
	if err != nil {
		return fmt.Errorf("cluster: ban %s: %w", ban.Addr, err)
	}
	// A put with the message TTL header: the bucket's Put has no TTL, and
	// a ban made longer must get the longer one.
	subj := "$KV." + b.name + "." + KeyOf(ban.Addr)
	// The server keeps TTLs in whole seconds: rounded up, a ban never
	// ends early anywhere.
	ttl = max((ttl + time.Second - 1).Truncate(time.Second), minTTL)
	if _, err := b.js.Publish(ctx, subj, v, jetstream.WithMsgTTL(ttl)); err != nil {
		return fmt.Errorf("cluster: publish ban %s: %w", ban.Addr, err)
	}
	return nil
}

// Watch calls apply for every ban in the bucket and every ban written from
// then on (this box's own included), and remove for every ban that ends
// or is withdrawn, until ctx ends. Bans for refused addresses are counted
// and not passed on. It returns when ctx ends or the watch fails.
func (b *Bans) Watch(ctx context.Context, apply func(Ban), remove func(netip.Addr)) error {
	kv, err := b.bucket(ctx)
	if err != nil {
		return err
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("cluster: watch bans: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("cluster: ban watch ended")
			}
			if e == nil {
				continue // the end of the bucket's current contents
			}
			if e.Operation() != jetstream.KeyValuePut {
				if a, err := AddrOf(e.Key()); err != nil {
					b.Malformed.Add(1)
				} else {
					remove(a)
				}
				continue
			}
			switch ban, malformed, refused := b.decode(e); {
			case malformed:
				b.Malformed.Add(1)
			case refused:
				b.Refused.Add(1)
			default:
				apply(ban)
			}
		}
	}
}

// decode reads a ban entry: not one (a key or value this package did not
// write), or one this box refuses, is not ok.
func (b *Bans) decode(e jetstream.KeyValueEntry) (ban Ban, malformed, refused bool) {
	a, err := AddrOf(e.Key())
	if err != nil {
		return Ban{}, true, false
	}
	var v banValue
	if err := json.Unmarshal(e.Value(), &v); err != nil || v.Expires <= 0 {
		return Ban{}, true, false
	}
	if b.cfg.Refuse != nil && b.cfg.Refuse(a) {
		return Ban{}, false, true
	}
	return Ban{Addr: a, Expires: time.Unix(0, v.Expires), Origin: v.Origin, Reason: v.Reason}, false, false
}

// KeyOf is a ban's key: an address in the characters a key may have
// (v4-198-51-100-7, v6- and the 32 hex digits of an IPv6 address).
func KeyOf(a netip.Addr) string {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return fmt.Sprintf("v4-%d-%d-%d-%d", b[0], b[1], b[2], b[3])
	}
	b := a.As16()
	return "v6-" + hex.EncodeToString(b[:])
}

// AddrOf parses a key KeyOf made.
func AddrOf(key string) (netip.Addr, error) {
	switch {
	case strings.HasPrefix(key, "v4-"):
		parts := strings.Split(key[3:], "-")
		if len(parts) != 4 {
			return netip.Addr{}, fmt.Errorf("cluster: key %q: not four numbers", key)
		}
		var b [4]byte
		for i, p := range parts {
			n, err := strconv.ParseUint(p, 10, 8)
			if err != nil || strconv.FormatUint(n, 10) != p {
				return netip.Addr{}, fmt.Errorf("cluster: key %q: %q is not a byte", key, p)
			}
			b[i] = byte(n)
		}
		return netip.AddrFrom4(b), nil
	case strings.HasPrefix(key, "v6-"):
		h := key[3:]
		if len(h) != 32 || strings.ToLower(h) != h {
			return netip.Addr{}, fmt.Errorf("cluster: key %q: want 32 lower-case hex digits", key)
		}
		var b [16]byte
		if _, err := hex.Decode(b[:], []byte(h)); err != nil {
			return netip.Addr{}, fmt.Errorf("cluster: key %q: %w", key, err)
		}
		a := netip.AddrFrom16(b)
		if a.Is4In6() {
			return netip.Addr{}, fmt.Errorf("cluster: key %q: an IPv4 address in IPv6 form", key)
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("cluster: key %q: not a ban's", key)
}
