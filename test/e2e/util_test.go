package e2e

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

// startRegistryForPush runs go-containerregistry's in-memory registry (a
// real registry implementation that accepts pushes) and returns its host.
func startRegistryForPush(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
