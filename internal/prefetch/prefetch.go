// Package prefetch asks the CPU to start loading memory that the data path
// will read a few packets from now (PREFETCHT0 on amd64, nothing elsewhere).
// Go has no prefetch intrinsic for user code; a call costs ~1 ns, a cache
// miss it hides 10-40.
package prefetch
