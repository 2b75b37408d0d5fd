package tracker

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/swarmguard/swarmguard/classifier"
)

func TestAnnounceReturnsOtherPeersCompact(t *testing.T) {
	tr := New()
	hash := strings.Repeat("%01", 20)
	for _, c := range []struct{ remote, port string }{{"10.0.0.1:5000", "6881"}, {"10.0.0.2:5000", "7000"}} {
		req := httptest.NewRequest("GET", "/announce?info_hash="+hash+"&port="+c.port+"&peer_id=-TR3000-aaaaaaaaaaaa", nil)
		req.RemoteAddr = c.remote
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		var peers classifier.Peers
		ok, n := classifier.ParseTrackerBody(body, &peers)
		if !ok {
			t.Fatalf("reply %q is not a tracker reply", body)
		}
		if c.port == "7000" && (n != 1 || peers.N != 1 || peers.Addr[0].String() != "10.0.0.1:6881") {
			t.Fatalf("second announce got %d peers %v, want 10.0.0.1:6881", n, peers.Addr[:peers.N])
		}
	}
}
