package cli

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// serveUntilDone runs serve (srv's Serve or ServeTLS on its listener) until
// it fails or ctx ends, then shuts srv down, giving requests in flight ten
// seconds to finish.
func serveUntilDone(ctx context.Context, srv *http.Server, serve func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
