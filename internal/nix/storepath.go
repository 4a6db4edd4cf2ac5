package nix

import (
	"fmt"
	"path"
	"strings"

	"github.com/nix-community/go-nix/pkg/storepath"
)

// StoreDir is the only store location kix supports.
const StoreDir = storepath.StoreDir

// HashLen is the length of a store path's hash part.
const HashLen = 32

// maxNameLen is the longest name part Nix allows a store path.
const maxNameLen = 211

// ParseStorePath checks that p names a store path (not a file inside one)
// and returns it cleaned. "/nix/store/<hash>-<name>" and "<hash>-<name>"
// are accepted.
func ParseStorePath(p string) (string, error) {
	abs := p
	if !strings.HasPrefix(abs, "/") {
		abs = StoreDir + "/" + abs
	}
	if path.Clean(abs) != abs || path.Dir(abs) != StoreDir {
		return "", fmt.Errorf("%q is not a store path (want %s/<hash>-<name>)", p, StoreDir)
	}
	if _, err := storepath.FromAbsolutePath(abs); err != nil {
		return "", fmt.Errorf("%q is not a store path: %w", p, err)
	}
	// What go-nix leaves to Nix: the dash after the hash, and a name that
	// is neither hidden nor longer than Nix allows.
	base := path.Base(abs)
	switch name := base[min(len(base), HashLen+1):]; {
	case len(base) <= HashLen+1 || base[HashLen] != '-':
		return "", fmt.Errorf("%q is not a store path (want %s/<hash>-<name>)", p, StoreDir)
	case strings.HasPrefix(name, "."):
		return "", fmt.Errorf("%q is not a store path: its name starts with a dot", p)
	case len(name) > maxNameLen:
		return "", fmt.Errorf("%q is not a store path: its name is longer than %d characters", p, maxNameLen)
	}
	return abs, nil
}

// SplitStorePath returns the store path a path inside the store belongs to,
// and the rest: "/nix/store/h-n/bin/x" gives "/nix/store/h-n", "/bin/x".
func SplitStorePath(p string) (storePath, rest string, err error) {
	if !strings.HasPrefix(p, StoreDir+"/") {
		return "", "", fmt.Errorf("%q is not inside %s", p, StoreDir)
	}
	base, rest, _ := strings.Cut(strings.TrimPrefix(p, StoreDir+"/"), "/")
	sp, err := ParseStorePath(base)
	if err != nil {
		return "", "", err
	}
	if rest != "" {
		rest = "/" + rest
	}
	return sp, rest, nil
}

// HashPart returns the 32-character hash of a store path.
func HashPart(storePath string) string {
	return strings.TrimPrefix(storePath, StoreDir+"/")[:HashLen]
}

// NamePart returns the name of a store path (after "<hash>-").
func NamePart(storePath string) string {
	return strings.TrimPrefix(storePath, StoreDir+"/")[HashLen+1:]
}

// BaseName returns "<hash>-<name>".
func BaseName(storePath string) string {
	return strings.TrimPrefix(storePath, StoreDir+"/")
}
