// Prefetch asks the CPU to start loading memory that the data path will read
// a few packets from now (PREFETCHT0 on amd64, nothing elsewhere). Go has no
// prefetch intrinsic for user code; a call costs ~1 ns, a cache miss it
// hides 10-40.

package shard

import "unsafe"

// prefetchLine prefetches the cache line holding p. It never faults: p may be nil
// or point anywhere.
//
//go:noescape
func prefetchLine(p unsafe.Pointer)

// prefetchFlow prefetches the lines of a 128-byte object at p (three when it
// straddles them).
//
//go:noescape
func prefetchFlow(p unsafe.Pointer)
