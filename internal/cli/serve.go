package cli

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveUntilDone runs serve (a server's Serve or ServeTLS on its listener)
// until it fails or ctx ends, then shuts the server down, giving requests
// in flight ten seconds to finish.
func serveUntilDone(ctx context.Context, serve func() error, shutdown func(context.Context) error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	grace, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(grace); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// withOps serves /healthz and /metrics beside h. It does not use
// http.ServeMux, which would clean and redirect paths (/v2/../x) before the
// server behind could reject them with its protocol's errors.
func withOps(h http.Handler, metrics *prometheus.Registry) http.Handler {
	metricsHandler := promhttp.HandlerFor(metrics, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			_, _ = w.Write([]byte("ok\n"))
		case "/metrics":
			metricsHandler.ServeHTTP(w, r)
		default:
			h.ServeHTTP(w, r)
		}
	})
}
