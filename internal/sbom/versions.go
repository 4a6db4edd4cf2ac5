package sbom

import (
	"strconv"
	"strings"
)

// CompareVersions orders two versions as Nix's builtins.compareVersions
// does, the order nixpkgs and vulnix use: the versions are split into
// components at '.' and '-' and between digits and other characters, and
// compared component by component; numbers compare as numbers, "pre" sorts
// before anything, a number sorts after a word ("2.3a" < "2.3.1"), a
// missing component sorts before a number ("1.0" < "1.0.1"). It returns
// -1, 0 or 1.
func CompareVersions(a, b string) int {
	for a != "" || b != "" {
		var ca, cb string
		ca, a = nextVersionComponent(a)
		cb, b = nextVersionComponent(b)
		switch {
		case componentLess(ca, cb):
			return -1
		case componentLess(cb, ca):
			return 1
		}
	}
	return 0
}

func nextVersionComponent(s string) (component, rest string) {
	s = strings.TrimLeft(s, ".-")
	if s == "" {
		return "", ""
	}
	i := 0
	if isDigit(s[0]) {
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	} else {
		for i < len(s) && !isDigit(s[i]) && s[i] != '.' && s[i] != '-' {
			i++
		}
	}
	return s[:i], s[i:]
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func componentLess(a, b string) bool {
	na, errA := strconv.ParseUint(a, 10, 64)
	nb, errB := strconv.ParseUint(b, 10, 64)
	aNum, bNum := errA == nil, errB == nil
	switch {
	case aNum && bNum:
		return na < nb
	case a == "" && bNum:
		return true
	case a == "pre" && b != "pre":
		return true
	case b == "pre":
		return false
	case bNum:
		return true
	case aNum:
		return false
	}
	return a < b
}
