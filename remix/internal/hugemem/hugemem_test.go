package hugemem

import "testing"

func TestAllocIsZeroedAndSized(t *testing.T) {
	for _, n := range []int{0, 1, minHuge - 1, minHuge, 3*minHuge + 5} {
		b := Alloc(n)
		if len(b) != n {
			t.Fatalf("Alloc(%d) has length %d", n, len(b))
		}
		for i := 0; i < n; i += 4093 {
			if b[i] != 0 {
				t.Fatalf("Alloc(%d) is not zeroed at %d", n, i)
			}
			b[i] = 1 // writable
		}
	}
}
