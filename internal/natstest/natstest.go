// Package natstest starts the real NATS server (nats-server/v2, embedded)
// for tests: on loopback, with JetStream, its store in the test's
// directory, stopped with the test.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server starts one server (clients must log in when user is set) and
// returns its client URL.
func Server(t testing.TB, user, password string) string {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	if user != "" {
		o.Users = []*server.User{{Username: user, Password: password}}
	}
	return start(t, o).ClientURL()
}

// ServerOpts starts one server with its options changed by set (users,
// nkeys, TLS) and returns its client URL.
func ServerOpts(t testing.TB, set func(*server.Options)) string {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	set(o)
	return start(t, o).ClientURL()
}

// Start starts a server on store and port (-1: any), for tests that stop
// and start it again.
func Start(t testing.TB, store string, port int) *server.Server {
	t.Helper()
	return start(t, &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: store, NoLog: true, NoSigs: true})
}

func start(t testing.TB, o *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server did not start within 10 s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Cluster starts n servers routed to each other with JetStream clustered
// and returns them and their client URLs once JetStream has a leader.
func Cluster(t testing.TB, n int) ([]*server.Server, []string) {
	t.Helper()
	var routes []*url.URL
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	var servers []*server.Server
	var urls []string
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "sg", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		}
		s := start(t, o)
		servers = append(servers, s)
		urls = append(urls, s.ClientURL())
	}
	// JetStream in a cluster answers once its meta group has a leader.
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				return servers, urls
			}
		}
		if time.Now().After(end) {
			t.Fatal("no JetStream meta leader in 20 s")
		}
	}
}
