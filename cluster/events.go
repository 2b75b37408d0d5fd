package cluster

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// EventStream is the stream of decision and ban events for SIEM and
// analytics consumers: subjects sg.events.<box>.<type>, bounded by age and
// size, the oldest dropped first.
const EventStream = "SG_EVENTS"

// Event limits: a week of events, at most EventBytes.
const (
	EventMaxAge = 7 * 24 * time.Hour
	EventBytes  = 1 << 30
)

// Events publishes a box's events. Events wait in a bounded queue while
// NATS is away; when it is full the oldest go first, counted.
type Events struct {
	bans  *Bans // the connection
	queue chan event
	// Published and Dropped count events sent and dropped from a full
	// queue.
	Published, Dropped atomic.Uint64
	stream             atomic.Bool // the stream exists
}

type event struct {
	kind string
	body []byte
}

// NewEvents makes a publisher of events on b's connection, with a queue of
// queue events.
func NewEvents(b *Bans, queue int) *Events {
	if queue <= 0 {
		queue = QueueLen
	}
	return &Events{bans: b, queue: make(chan event, queue)}
}

// Queued is how many events wait for NATS (besides the one being sent).
func (e *Events) Queued() int { return len(e.queue) }

// Send queues one event (a JSON record) of kind (ban, unban, decision,
// host, failopen); it never blocks.
func (e *Events) Send(kind string, body []byte) {
	ev := event{kind: kind, body: body}
	for {
		select {
		case e.queue <- ev:
			return
		default:
		}
		// Full: the oldest goes.
		select {
		case <-e.queue:
			e.Dropped.Add(1)
		default:
		}
	}
}

// Run publishes queued events until ctx ends.
func (e *Events) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-e.queue:
			subj := fmt.Sprintf("sg.events.%s.%s", e.bans.cfg.Box, ev.kind)
			for ctx.Err() == nil {
				if err := e.publish(ctx, subj, ev.body); err == nil {
					e.Published.Add(1)
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
		}
	}
}

func (e *Events) publish(ctx context.Context, subj string, body []byte) error {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if !e.stream.Load() {
		if _, err := e.bans.js.CreateOrUpdateStream(pctx, jetstream.StreamConfig{
			Name: EventStream, Subjects: []string{"sg.events.>"}, MaxAge: EventMaxAge, MaxBytes: EventBytes,
			Discard: jetstream.DiscardOld, Replicas: e.bans.cfg.Replicas, Storage: jetstream.FileStorage,
		}); err != nil {
			return fmt.Errorf("cluster: event stream: %w", err)
		}
		e.stream.Store(true)
	}
	_, err := e.bans.js.Publish(pctx, subj, body)
	return err
}
