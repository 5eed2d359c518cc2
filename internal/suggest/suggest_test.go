package suggest

import "testing"

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"bucket", "bucket", 0},
		{"buckett", "bucket", 1}, // doubled letter
		{"bukcet", "bucket", 1},  // swapped letters
		{"bucet", "bucket", 1},   // missing letter
		{"backet", "bucket", 1},  // wrong letter
		{"", "abc", 3},
		{"prefix", "region", 4},
		{"regoin", "region", 1},
		{"kitten", "sitting", 3},
		{"ca", "abc", 3}, // a swap is not also an insertion: OSA, not Damerau
	}
	for _, tt := range tests {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Distance(tt.b, tt.a); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (not symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}
