package live

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// A clean stop releases the queues at once: the next start on the same ports
// binds them (asavie alone leaks its ring mappings, which pin the sockets).
func TestRestartOnSamePorts(t *testing.T) {
	_, _, _, a, b := bridgeEnv(t)
	for i := 0; i < 3; i++ {
		pin := fmt.Sprintf("/sys/fs/bpf/sgrs%d", time.Now().UnixNano())
		t.Cleanup(func() { os.RemoveAll(pin) })
		r, err := Start(Config{Bridge: [2]string{a, b}, PinPath: pin})
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		r.Stop()
		os.RemoveAll(pin)
	}
}
