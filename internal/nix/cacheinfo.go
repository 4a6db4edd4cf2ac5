package nix

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// CacheInfo is a binary cache's nix-cache-info file, the first thing Nix
// reads from a substituter:
//
//	StoreDir: /nix/store
//	WantMassQuery: 1
//	Priority: 40
type CacheInfo struct {
	StoreDir      string // the store the cache is for; "" if the file does not say
	WantMassQuery bool   // the cache is worth asking about many paths at once
	Priority      int    // lower is preferred; 0 if the file does not say
}

// ParseCacheInfo reads a nix-cache-info file as Nix does: "Key: value"
// lines, of which lines without a colon and unknown keys are ignored.
func ParseCacheInfo(r io.Reader) (*CacheInfo, error) {
	var ci CacheInfo
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		key, value, ok := strings.Cut(scanner.Text(), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch key {
		case "StoreDir":
			if ci.StoreDir != "" && ci.StoreDir != value {
				return nil, fmt.Errorf("nix-cache-info gives two StoreDirs, %s and %s", ci.StoreDir, value)
			}
			ci.StoreDir = value
		case "WantMassQuery":
			ci.WantMassQuery = value == "1"
		case "Priority":
			p, err := strconv.Atoi(value)
			if err != nil {
				return nil, fmt.Errorf("nix-cache-info: Priority %q is not a number", value)
			}
			ci.Priority = p
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("reading nix-cache-info: %w", err)
	}
	return &ci, nil
}

// String returns ci as a nix-cache-info file. WantMassQuery and Priority
// are left out when false and 0.
func (ci CacheInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "StoreDir: %s\n", ci.StoreDir)
	if ci.WantMassQuery {
		b.WriteString("WantMassQuery: 1\n")
	}
	if ci.Priority != 0 {
		fmt.Fprintf(&b, "Priority: %d\n", ci.Priority)
	}
	return b.String()
}
