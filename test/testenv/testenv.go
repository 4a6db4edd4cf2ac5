// Package testenv decides what a test does when something it needs is not
// on this machine: outside CI it skips, saying what is missing; under CI=true
// it fails, because CI installs everything and a skip there would hide a
// broken setup.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test, or fails it under CI, because of what.
func Missing(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("missing under CI: %s", what)
	}
	t.Skipf("skipping: %s (run `make tools`, or `make test`, to install it)", what)
}

// LookPath returns the path of a program the test needs, or skips/fails.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" not found on PATH")
	}
	return p
}
