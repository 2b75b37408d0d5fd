package cluster

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A box's events reach a consumer of the stream in order, under the box's
// subjects; sent while NATS was away they wait and go out when it is back;
// a full queue drops the oldest, counted.
func TestEventsReachConsumers(t *testing.T) {
	store := t.TempDir()
	s1 := startNATS(t, store, -1)
	url := s1.ClientURL()
	port := s1.Addr().(*net.TCPAddr).Port
	b := open(t, url, "box-a", nil)
	ev := NewEvents(b, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ev.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for i := range 3 {
		ev.Send("ban", []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	cons, err := b.js.CreateOrUpdateConsumer(context.Background(), EventStream, jetstream.ConsumerConfig{})
	for try := 0; err != nil && try < 50; try++ {
		time.Sleep(100 * time.Millisecond) // the stream is made with the first event
		cons, err = b.js.CreateOrUpdateConsumer(context.Background(), EventStream, jetstream.ConsumerConfig{})
	}
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for m := range batch.Messages() {
		if m.Subject() != "sg.events.box-a.ban" || string(m.Data()) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("event %d: %s %s", i, m.Subject(), m.Data())
		}
		i++
	}
	if i != 3 || ev.Published.Load() != 3 {
		t.Fatalf("%d events consumed, %d published", i, ev.Published.Load())
	}
	// NATS away: the event waits, and goes out when NATS is back.
	s1.Shutdown()
	s1.WaitForShutdown()
	ev.Send("unban", []byte(`{"n":3}`))
	time.Sleep(300 * time.Millisecond)
	startNATS(t, store, port)
	var got string
	for end := time.Now().Add(20 * time.Second); got == "" && time.Now().Before(end); {
		if batch, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second)); err == nil {
			for m := range batch.Messages() {
				got = m.Subject() + " " + string(m.Data())
			}
		}
	}
	if got != `sg.events.box-a.unban {"n":3}` {
		t.Fatalf("after NATS came back the consumer got %q (published %d)", got, ev.Published.Load())
	}
	// A full queue drops the oldest.
	full := NewEvents(b, 2)
	for i := range 5 {
		full.Send("decision", []byte(fmt.Sprint(i)))
	}
	if full.Dropped.Load() != 3 || string((<-full.queue).body) != "3" {
		t.Fatalf("dropped %d", full.Dropped.Load())
	}
}
