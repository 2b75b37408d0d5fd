package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/swarmguard/swarmguard/internal/natstest"
)

// tlsFiles makes a CA and a server certificate for 127.0.0.1 signed by it;
// it returns the CA file and the server's tls.Config.
func tlsFiles(t *testing.T) (string, *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swarmguard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// With TLS on the servers, a box that knows their CA shares bans over
// TLS; one that does not cannot connect, so it writes none.
func TestBansOverTLS(t *testing.T) {
	caFile, srvTLS := tlsFiles(t)
	url := natstest.ServerOpts(t, func(o *server.Options) { o.TLS, o.TLSConfig, o.TLSTimeout = true, srvTLS, 5 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	good, err := OpenBans(ctx, Config{URLs: []string{url}, Box: "box-a", TLSCA: caFile})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	peer := netip.MustParseAddr("198.51.100.95")
	if err := good.Publish(ctx, Ban{Addr: peer, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	refused(t, Config{URLs: []string{url}, Box: "box-x"}, "a box without the CA")
	in, err := good.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 1 {
		t.Fatalf("the bucket holds %v", in)
	}
}
