package cluster

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/swarmguard/swarmguard/bpf"
)

// KernelBans is a box's kernel ban map (bpf.Bans): expiries in the
// program's monotonic clock.
type KernelBans interface {
	Add(a netip.Addr, until uint64) error
	Del(a netip.Addr) error
}

// Sync keeps a box's kernel ban map and the shared bucket in step: the
// box's own bans go out (Local), the others' come in. Local bans never wait
// for NATS: they are in the kernel already, and wait here, in a bounded
// queue, until the bucket takes them. A box that was cut off catches up
// when it is back: the re-list every few seconds (and the watch) apply
// what it missed, and its queue goes out.
type Sync struct {
	bans   *Bans
	kernel KernelBans
	queue  chan Ban
	mu     sync.Mutex
	remote map[netip.Addr]time.Time // bans this box holds because another box made them
	// Counters: bans applied from other boxes, removed when they ended,
	// local bans published, local bans dropped from a full queue, and
	// kernel writes that failed.
	Applied, Removed, Published, Dropped, KernelErrors atomic.Uint64
}

// QueueLen bounds the local bans waiting for the bucket.
const QueueLen = 10_000

// relist is how often the whole bucket is read again: the watch alone can
// be seconds late after a NATS node is lost (docs/SCALEOUT.md).
const relist = 5 * time.Second

// NewSync makes a sync between bans and the kernel map.
func NewSync(bans *Bans, kernel KernelBans) *Sync {
	return &Sync{bans: bans, kernel: kernel, queue: make(chan Ban, QueueLen), remote: map[netip.Addr]time.Time{}}
}

// Queued is how many of this box's bans wait for NATS (besides the one
// being published).
func (s *Sync) Queued() int { return len(s.queue) }

// Local hands over a ban this box made; it never blocks (a full queue
// drops the ban from sharing and counts it: the kernel has it anyway).
func (s *Sync) Local(b Ban) {
	select {
	case s.queue <- b:
	default:
		s.Dropped.Add(1)
	}
}

// Run shares bans until ctx ends.
func (s *Sync) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.publish(ctx) }()
	go func() { defer wg.Done(); s.relist(ctx) }()
	var err error
	for ctx.Err() == nil {
		// The watch ends when the connection does; it is made again.
		if err = s.bans.Watch(ctx, s.apply, s.remove); err != nil && ctx.Err() == nil {
			time.Sleep(250 * time.Millisecond)
		}
	}
	wg.Wait()
	return nil
}

func (s *Sync) publish(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-s.queue:
			// Until the bucket takes it or it is over: NATS may be away.
			for ctx.Err() == nil && time.Now().Before(b.Expires) {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				err := s.bans.Publish(pctx, b)
				cancel()
				if err == nil {
					s.Published.Add(1)
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
	}
}

// apply puts another box's ban into the kernel map.
func (s *Sync) apply(b Ban) {
	if b.Origin == s.bans.cfg.Box {
		return // this box's own: the kernel has it
	}
	left := time.Until(b.Expires)
	if left <= 0 {
		return
	}
	if err := s.kernel.Add(b.Addr, bpf.Monotonic()+uint64(left)); err != nil {
		s.KernelErrors.Add(1)
		return
	}
	s.mu.Lock()
	_, had := s.remote[b.Addr]
	s.remote[b.Addr] = b.Expires
	s.mu.Unlock()
	if !had {
		s.Applied.Add(1)
	}
}

// remove takes a ban that ended in the bucket out of the kernel map, if
// this box holds it because of another box (its own end in the kernel).
func (s *Sync) remove(a netip.Addr) {
	s.mu.Lock()
	_, ok := s.remote[a]
	delete(s.remote, a)
	s.mu.Unlock()
	if !ok {
		return
	}
	if err := s.kernel.Del(a); err != nil {
		s.KernelErrors.Add(1)
		return
	}
	s.Removed.Add(1)
}

// relist reads the whole bucket every few seconds: it applies what the
// watch missed and removes remote bans the bucket no longer has.
func (s *Sync) relist(ctx context.Context) {
	t := time.NewTicker(relist)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		in, err := s.bans.List(lctx)
		cancel()
		if err != nil {
			continue // NATS away: the next turn
		}
		for _, b := range in {
			s.mu.Lock()
			_, held := s.remote[b.Addr]
			s.mu.Unlock()
			if !held {
				s.apply(b)
			}
		}
		s.mu.Lock()
		var gone []netip.Addr
		for a := range s.remote {
			if _, ok := in[a]; !ok {
				gone = append(gone, a)
			}
		}
		s.mu.Unlock()
		for _, a := range gone {
			s.remove(a)
		}
	}
}

// List reads every ban in the bucket (refused and malformed ones left out;
// Watch counts them).
func (b *Bans) List(ctx context.Context) (map[netip.Addr]Ban, error) {
	out := map[netip.Addr]Ban{}
	kv, err := b.bucket(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer keys.Stop()
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // ended meanwhile
		}
		if err != nil {
			return nil, err
		}
		if ban, malformed, refused := b.decode(e); !malformed && !refused {
			out[ban.Addr] = ban
		}
	}
	return out, nil
}
