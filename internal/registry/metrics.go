package registry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kix-project/kix/internal/image"
)

// Collectors return Prometheus collectors for a registry's builder and
// cache: what `kix registry` serves on /metrics.
func Collectors(b *image.Builder) []prometheus.Collector {
	counter := func(name, help string, value func(image.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "kix", Subsystem: "image", Name: name, Help: help},
			func() float64 { return float64(value(b.Stats())) })
	}
	return []prometheus.Collector{
		counter("layers_built_total", "Layers built from store paths and written to the cache.", func(s image.Stats) int64 { return s.LayersBuilt }),
		counter("layer_bytes_built_total", "Compressed bytes of the layers built.", func(s image.Stats) int64 { return s.LayerBytes }),
		counter("layers_reused_total", "Layers found already built in the cache.", func(s image.Stats) int64 { return s.LayersReused }),
		counter("artifacts_assembled_total", "Images and indexes assembled from store paths.", func(s image.Stats) int64 { return s.Artifacts }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "kix", Subsystem: "image", Name: "cache_bytes", Help: "Bytes held by the blob cache."},
			func() float64 { return float64(b.Cache.Size()) }),
	}
}
