// Package notify sends webhooks: an HTTP POST of a JSON body for every
// ban, unban and host turned p2p. Each URL has its own bounded queue and
// sender, so a hanging or failing receiver delays only its own notices;
// Send never blocks (a full queue drops the notice and counts it).
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Notice is the JSON body of one POST.
type Notice struct {
	Event   string   `json:"event"` // ban, unban, host
	Time    string   `json:"time"`
	Host    string   `json:"host"`
	Peer    string   `json:"peer,omitempty"`
	Label   string   `json:"label,omitempty"`
	P       float64  `json:"p,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
	Expires string   `json:"ban_expires,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Box     string   `json:"box,omitempty"` // the sender's host name
}

// Options are the senders' settings.
type Options struct {
	Timeout time.Duration // one POST
	Retries int           // after the first try, with doubling backoff from Backoff
	Backoff time.Duration // first retry's wait (default 200 ms)
	Queue   int           // notices waiting per URL
	Log     io.Writer     // one line per notice given up
}

// Counts are a Hooks' counters, summed over its URLs.
type Counts struct {
	Sent, Failed, Retried, Dropped uint64
}

// Hooks sends notices to a set of URLs.
type Hooks struct {
	opt     Options
	mu      sync.Mutex
	senders map[string]*sender
	client  *http.Client
	// counts of senders removed by SetURLs, so the totals never go down
	gone Counts
}

type sender struct {
	url                            string
	q                              chan []byte
	quit                           chan struct{}
	done                           chan struct{}
	sent, failed, retried, dropped atomic.Uint64
}

// New starts senders for urls.
func New(urls []string, opt Options) *Hooks {
	if opt.Backoff <= 0 {
		opt.Backoff = 200 * time.Millisecond
	}
	if opt.Queue <= 0 {
		opt.Queue = 1024
	}
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	h := &Hooks{opt: opt, senders: map[string]*sender{}, client: &http.Client{}}
	h.SetURLs(urls, opt.Timeout, opt.Retries)
	return h
}

// SetURLs changes the receivers (a reload): senders of URLs that stay keep
// their queues; removed ones stop after the POST in progress.
func (h *Hooks) SetURLs(urls []string, timeout time.Duration, retries int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opt.Timeout, h.opt.Retries = timeout, retries
	keep := map[string]bool{}
	for _, u := range urls {
		keep[u] = true
		if h.senders[u] == nil {
			s := &sender{url: u, q: make(chan []byte, h.opt.Queue), quit: make(chan struct{}), done: make(chan struct{})}
			h.senders[u] = s
			go h.run(s)
		}
	}
	for u, s := range h.senders {
		if !keep[u] {
			close(s.quit)
			h.gone.Sent += s.sent.Load()
			h.gone.Failed += s.failed.Load()
			h.gone.Retried += s.retried.Load()
			h.gone.Dropped += s.dropped.Load() + uint64(len(s.q))
			delete(h.senders, u)
		}
	}
}

// Send queues n for every URL; it never blocks.
func (h *Hooks) Send(n *Notice) {
	body, err := json.Marshal(n)
	if err != nil {
		return // a Notice always marshals
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.senders {
		select {
		case s.q <- body:
		default:
			s.dropped.Add(1)
		}
	}
}

// Counts sums the counters of every sender so far.
func (h *Hooks) Counts() Counts {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.gone
	for _, s := range h.senders {
		c.Sent += s.sent.Load()
		c.Failed += s.failed.Load()
		c.Retried += s.retried.Load()
		c.Dropped += s.dropped.Load()
	}
	return c
}

// Close stops the senders and waits for them; notices still queued are
// dropped and counted.
func (h *Hooks) Close() {
	h.mu.Lock()
	var done []chan struct{}
	for _, s := range h.senders {
		done = append(done, s.done)
	}
	h.mu.Unlock()
	h.SetURLs(nil, h.opt.Timeout, h.opt.Retries)
	for _, d := range done {
		<-d
	}
}

func (h *Hooks) run(s *sender) {
	defer close(s.done)
	// Stopping a sender also cuts the POST in progress.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.quit
		cancel()
	}()
	for {
		select {
		case <-s.quit:
			return
		case body := <-s.q:
			h.deliver(ctx, s, body)
		}
	}
}

// deliver POSTs body until a 2xx answer or the retries are spent.
func (h *Hooks) deliver(ctx context.Context, s *sender, body []byte) {
	h.mu.Lock()
	timeout, retries := h.opt.Timeout, h.opt.Retries
	h.mu.Unlock()
	wait := h.opt.Backoff
	var last error
	for try := 0; try <= retries; try++ {
		if try > 0 {
			s.retried.Add(1)
			select {
			case <-s.quit:
				s.failed.Add(1)
				return
			case <-time.After(wait):
			}
			wait *= 2
		}
		if last = h.post(ctx, s.url, body, timeout); last == nil {
			s.sent.Add(1)
			return
		}
	}
	s.failed.Add(1)
	fmt.Fprintf(h.opt.Log, "swarmguard: webhook %s: gave up after %d tries: %v\n", s.url, retries+1, last)
}

func (h *Hooks) post(ctx context.Context, url string, body []byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "swarmguard")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}
