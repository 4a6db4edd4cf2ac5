package cli

import (
	"os"
	"runtime/debug"
)

// The garbage collector's defaults (GOGC=100, no memory limit) suit a
// program whose live heap is large next to what it allocates. kix's
// commands are the other kind: a one-shot command allocates its input
// and drops it, a server allocates per request around a live heap of a
// few megabytes, and each collection's fixed cost is paid every few
// megabytes allocated. Both trade some memory for CPU, under a soft limit,
// unless GOGC or GOMEMLIMIT say otherwise.

// batchGC is for a one-shot command that talks to a cluster: the collector
// runs a quarter as often (GOGC=400) under a soft limit of 1 GiB. On a
// machine the API server shares, the collector's time is time the server
// does not get; an apply of a thousand objects uses about a quarter less
// CPU for some 20 MB more.
func batchGC() { tuneGC(400, 1<<30) }

// serverGC is for a server answering many small requests (kix cache): the
// collector runs a tenth as often (GOGC=1000) under a soft limit of
// 256 MiB. Narinfo answers take about a tenth less CPU, for a heap that
// stays in the tens of megabytes.
func serverGC() { tuneGC(1000, 256<<20) }

func tuneGC(percent int, limit int64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
}
