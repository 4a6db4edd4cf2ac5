package nix

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

// ParseNarinfo parses a narinfo with the rules of go-nix's narinfo.Parse.
// It exists because narinfo.Parse allocates and clears a 1 MiB line buffer
// on every call: walking a closure in a binary cache, or serving narinfos
// under load, spent most of its time on that buffer and on collecting it.
func ParseNarinfo(data []byte) (*narinfo.NarInfo, error) {
	ni := &narinfo.NarInfo{}
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		if err := parseNarinfoLine(ni, string(line)); err != nil {
			return nil, err
		}
	}
	// No Compression field means bzip2, as in Nix.
	if ni.Compression == "" {
		ni.Compression = "bzip2"
	}
	return ni, nil
}

func parseNarinfoLine(ni *narinfo.NarInfo, line string) error {
	k, v, ok := strings.Cut(line, ": ")
	if !ok {
		return fmt.Errorf("narinfo line %q is not \"Key: value\"", line)
	}
	var err error
	switch k {
	case "StorePath":
		ni.StorePath = v
	case "URL":
		ni.URL = v
	case "Compression":
		ni.Compression = v
	case "FileHash":
		ni.FileHash, err = nixhash.ParseAny(v, nil)
	case "FileSize":
		ni.FileSize, err = strconv.ParseUint(v, 10, 64)
	case "NarHash":
		ni.NarHash, err = nixhash.ParseAny(v, nil)
	case "NarSize":
		ni.NarSize, err = strconv.ParseUint(v, 10, 64)
	case "References":
		if v != "" {
			ni.References = append(ni.References, strings.Split(v, " ")...)
		}
	case "Deriver":
		if v != "unknown-deriver" {
			ni.Deriver = v
		}
	case "System":
		ni.System = v
	case "Sig":
		// One that does not parse (another tool's format) is skipped, as
		// Nix skips one that does not verify: another may.
		if sig, err := signature.ParseSignature(v); err == nil {
			ni.Signatures = append(ni.Signatures, sig)
		}
	case "CA":
		ni.CA = v
	default:
		// Nix ignores keys it does not know, so other tools may add them.
	}
	if err != nil {
		return fmt.Errorf("narinfo line %q: %w", line, err)
	}
	return nil
}
