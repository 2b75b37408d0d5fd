package xsk

import (
	"fmt"
	"testing"
)

// BenchmarkFrameCopy is the work a bridge without a shared UMEM does for
// every forwarded frame and one with it does not: copying the frame from
// the receiving socket's UMEM into a transmit frame of the other's (two
// 16 MiB UMEMs, frames taken in a scattered order so that the caches see
// what a busy worker's would).
func BenchmarkFrameCopy(b *testing.B) {
	const frames, size = 8192, 2048
	src, dst := make([]byte, frames*size), make([]byte, frames*size)
	for _, n := range []int{64, 576, 1500} {
		b.Run(fmt.Sprintf("bytes=%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			i := 0
			for b.Loop() {
				f := (i * 2654435761) % frames
				g := (i * 40503) % frames
				copy(dst[g*size:g*size+n], src[f*size:f*size+n])
				i++
			}
		})
	}
}
