package e2e

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/kix-project/kix/test/fixture"
)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

// kixServer is a long-running kix command of a test.
type kixServer struct {
	name string   // as the log names it: "kix cache"
	args []string // kix's arguments
	env  []string // fixture.Env() when nil
	addr string   // if set, start returns once http://addr/healthz answers
}

// start runs s until the test ends, or until stop (SIGTERM, as a pod is
// stopped), and returns its log, which a failed test prints.
func (s kixServer) start(t *testing.T) (logs *bytes.Buffer, stop func()) {
	t.Helper()
	cmd := exec.Command(kix, s.args...)
	cmd.Env = s.env
	if cmd.Env == nil {
		cmd.Env = fixture.Env()
	}
	logs = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", s.name, logs)
		}
	})
	if s.addr != "" {
		waitUntil(t, 20*time.Second, s.name+" answering on "+s.addr, func() bool {
			resp, err := http.Get("http://" + s.addr + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
	}
	return logs, stop
}

// freeAddr is a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startRegistryForPush runs go-containerregistry's in-memory registry (a
// real registry implementation that accepts pushes) and returns its host.
func startRegistryForPush(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
