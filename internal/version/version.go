// Package version reports which kix build is running. Version and Commit are
// stamped at link time by the Makefile:
//
//	go build -ldflags "-X github.com/kix-project/kix/internal/version.Version=v0.1.0 \
//	    -X github.com/kix-project/kix/internal/version.Commit=$(git rev-parse HEAD)"
//
// A binary built without ldflags (go install, go run) falls back to the module
// and VCS information the Go toolchain embeds.
package version

import (
	"runtime"
	"runtime/debug"
)

// Stamped at link time; see the package doc.
var (
	Version = ""
	Commit  = ""
)

// Info describes a build. Its JSON form is what `kix version -o json` prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the running binary's build information.
func Get() Info {
	info := Info{
		Version:   Version,
		Commit:    Commit,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		if info.Commit == "" {
			info.Commit = vcsRevision(bi.Settings)
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

func vcsRevision(settings []debug.BuildSetting) string {
	var rev string
	var dirty bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}
