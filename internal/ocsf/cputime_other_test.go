//go:build !unix

package ocsf

import "time"

// processCPU is unknown here; the benchmark falls back to wall time.
func processCPU() time.Duration { return 0 }
