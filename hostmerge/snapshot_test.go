package hostmerge

import "testing"

// TestCountScaleIsLogScale: the tabled scales answer what logScale does for
// every count, below zero and past full too.
func TestCountScaleIsLogScale(t *testing.T) {
	for _, full := range []int{8, 16, 256} {
		s := newCountScale(full)
		for n := -2; n <= 2*full; n++ {
			if got, want := s.of(n), logScale(float64(n), float64(full)); got != want {
				t.Fatalf("full %d, count %d: %v, want %v", full, n, got, want)
			}
		}
	}
}
