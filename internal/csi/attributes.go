package csi

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kix-project/kix/internal/nix"
)

// Volume attribute keys besides Nix systems.
const (
	attrStorePath  = "storePath"  // one store path, any system
	attrStorePaths = "storePaths" // store paths separated by spaces, any system
)

// systemKey matches Nix system names: x86_64-linux, aarch64-linux, ...
var systemKey = regexp.MustCompile(`^[a-z0-9_]+-[a-z0-9_]+$`)

// storePaths returns the store paths a volume's attributes name for system,
// sorted. Keys the CO adds (csi.storage.k8s.io/...) are ignored.
func storePaths(attrs map[string]string, system string) ([]string, error) {
	var paths, others []string
	for _, key := range slices.Sorted(maps.Keys(attrs)) {
		value := attrs[key]
		switch {
		case strings.HasPrefix(key, "csi.storage.k8s.io/"):
			continue
		case key == attrStorePath, key == attrStorePaths, key == system:
			ps, err := parsePaths(key, value, key == attrStorePath)
			if err != nil {
				return nil, err
			}
			paths = append(paths, ps...)
		case systemKey.MatchString(key):
			if _, err := parsePaths(key, value, false); err != nil {
				return nil, err
			}
			others = append(others, key)
		default:
			return nil, status.Errorf(codes.InvalidArgument,
				"volume attribute %q: want %s, %s or a Nix system such as %s", key, attrStorePath, attrStorePaths, system)
		}
	}
	switch {
	case len(paths) == 0 && len(others) > 0:
		return nil, status.Errorf(codes.FailedPrecondition,
			"volume names store paths for %s only; this node is %s", strings.Join(others, ", "), system)
	case len(paths) == 0:
		return nil, status.Errorf(codes.InvalidArgument,
			"volume attributes name no store path: set %s, or %s: /nix/store/...", attrStorePath, system)
	}
	slices.Sort(paths)
	return slices.Compact(paths), nil
}

func parsePaths(key, value string, single bool) ([]string, error) {
	fields := strings.Fields(value)
	if len(fields) == 0 || single && len(fields) > 1 {
		what := "store paths separated by spaces"
		if single {
			what = "one store path"
		}
		return nil, status.Errorf(codes.InvalidArgument, "volume attribute %s: %q: want %s", key, value, what)
	}
	out := make([]string, len(fields))
	for i, f := range fields {
		if !strings.HasPrefix(f, nix.StoreDir+"/") {
			return nil, status.Errorf(codes.InvalidArgument, "volume attribute %s: %q is not a store path (want %s/<hash>-<name>)", key, f, nix.StoreDir)
		}
		p, err := nix.ParseStorePath(f)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "volume attribute %s: %v", key, err)
		}
		out[i] = p
	}
	return out, nil
}

// volumeDirName is a volume ID as a file name: IDs made of letters,
// digits, '-' and '_' (the kubelet's csi-<hex>) as they are, other bytes
// escaped as %XX, and IDs too long for a file name as %%<sha256>. Distinct
// IDs get distinct names.
func volumeDirName(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() > 200 {
		return "%%" + sha256Hex(id)
	}
	return b.String()
}
