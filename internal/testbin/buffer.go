package testbin

import (
	"bytes"
	"sync"
)

// Buffer is a writer a test may read while another goroutine or a child
// process writes it (a runner's records, a child's stderr).
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *Buffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Bytes is a copy of what was written so far.
func (w *Buffer) Bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.b.Bytes())
}

// String is what was written so far.
func (w *Buffer) String() string { return string(w.Bytes()) }
