// Package tracker is a small HTTP(S) BitTorrent tracker (BEP 3 announce with
// BEP 23 compact answers) for the capture harness: the hidden-discovery swarm
// announces to it over TLS only, which no DPI can read. It keeps peers in
// memory per info_hash and answers with every other peer.
package tracker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Tracker answers announces.
type Tracker struct {
	mu    sync.Mutex
	swarm map[string]map[netip.AddrPort]time.Time
	// Interval is the re-announce interval told to clients.
	Interval time.Duration
}

// New makes an empty tracker.
func New() *Tracker {
	return &Tracker{swarm: map[string]map[netip.AddrPort]time.Time{}, Interval: 30 * time.Second}
}

// ServeHTTP handles GET /announce.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/announce" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	hash := q.Get("info_hash")
	port, err := strconv.Atoi(q.Get("port"))
	host, _, herr := net.SplitHostPort(r.RemoteAddr)
	addr, aerr := netip.ParseAddr(host)
	if len(hash) != 20 || err != nil || port <= 0 || port > 65535 || herr != nil || aerr != nil {
		fmt.Fprint(w, "d14:failure reason15:invalid requeste")
		return
	}
	me := netip.AddrPortFrom(addr.Unmap(), uint16(port))
	t.mu.Lock()
	peers := t.swarm[hash]
	if peers == nil {
		peers = map[netip.AddrPort]time.Time{}
		t.swarm[hash] = peers
	}
	if q.Get("event") == "stopped" {
		delete(peers, me)
	} else {
		peers[me] = time.Now()
	}
	var compact []byte
	for p, seen := range peers {
		if p == me || time.Since(seen) > 3*t.Interval || !p.Addr().Is4() {
			continue
		}
		a := p.Addr().As4()
		compact = append(compact, a[:]...)
		compact = binary.BigEndian.AppendUint16(compact, p.Port())
	}
	t.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "d8:completei0e10:incompletei%de8:intervali%de5:peers%d:%se", len(peers), int(t.Interval.Seconds()), len(compact), compact)
}

// SelfSigned makes a throwaway TLS certificate for the given IP addresses.
func SelfSigned(ips ...net.IP) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tracker key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "swarmguard bench tracker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  ips,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tracker certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
