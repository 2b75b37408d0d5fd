package notify

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitCounts polls until ok(c) or 20 s.
func waitCounts(t *testing.T, h *Hooks, ok func(c Counts) bool) Counts {
	t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if c := h.Counts(); ok(c) {
			return c
		}
	}
	t.Fatalf("counts stuck at %+v", h.Counts())
	return Counts{}
}

// A good receiver gets every notice's JSON body; one answering 500 gets the
// first try and every retry, then the notice is counted failed; one that
// hangs is cut by the timeout. Neither slows the good one.
func TestWebhookDeliveryRetriesAndTimeouts(t *testing.T) {
	var mu sync.Mutex
	var got []Notice
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n Notice
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&n) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}))
	defer good.Close()
	var fails atomic.Int64
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fails.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer bad.Close()
	hang := hangingServer(t)

	h := New([]string{good.URL, bad.URL, hang.URL}, Options{Timeout: 200 * time.Millisecond, Retries: 2, Backoff: 10 * time.Millisecond, Queue: 64})
	defer h.Close()
	for i := range 5 {
		h.Send(&Notice{Event: "ban", Host: "192.0.2.7", Peer: "10.0.0.2", Label: "p2p", P: 0.99, Reasons: []string{"mse_shape"}, Expires: "2026-12-01T23:00:00Z", Reason: string(rune('a' + i))})
	}
	// good: 5 sent. bad: 5 x 3 tries, failed. hang: 5 x 3 timeouts, failed.
	c := waitCounts(t, h, func(c Counts) bool { return c.Sent == 5 && c.Failed == 10 })
	if c.Retried != 20 || fails.Load() != 15 || c.Dropped != 0 {
		t.Fatalf("counts %+v, 500s served %d", c, fails.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 5 || got[0].Event != "ban" || got[0].Host != "192.0.2.7" || got[0].Expires == "" || len(got[0].Reasons) != 1 {
		t.Fatalf("good receiver got %+v", got)
	}
}

// Send never blocks: with a receiver that hangs and a queue of 4, a burst
// of 10,000 notices returns at once, the overflow counted as dropped.
func TestWebhookQueueNeverBlocks(t *testing.T) {
	hang := hangingServer(t)
	h := New([]string{hang.URL}, Options{Timeout: time.Minute, Retries: 0, Queue: 4})
	done := make(chan struct{})
	go func() {
		for range 10000 {
			h.Send(&Notice{Event: "host", Host: "10.0.0.9"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Send blocked behind a hanging receiver")
	}
	// At most the queue plus the one in flight are not dropped.
	if c := h.Counts(); c.Dropped < 10000-5 {
		t.Fatalf("dropped %d of 10000", c.Dropped)
	}
	h.Close()
	if c := h.Counts(); c.Dropped+c.Sent+c.Failed < 9999 {
		t.Fatalf("after close: %+v", c)
	}
}

// hangingServer answers nothing until the client gives up or the test ends.
func hangingServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}
