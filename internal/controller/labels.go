package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// labelValue is an object's name as a label value: the name if it fits,
// else shortened. Two names may share a value, so what a label finds is
// checked against the name: a tenant block's spec.owner, a build Job's
// controller, an applied object's Installation looked up by the value
// (see ownerInstallation).
func labelValue(name string) string {
	return shorten(name, validation.LabelValueMaxLength)
}

// shorten fits a name into n characters: the name itself if it fits, else
// its start and a hash of the whole. For n = 23, "a-very-long-installation"
// becomes "a-very-long-" and the first ten hex digits of its SHA-256. A
// shortened name ends alphanumeric, as names and label values must.
func shorten(name string, n int) string {
	if len(name) <= n {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	hash := hex.EncodeToString(sum[:])[:10]
	return strings.TrimRight(name[:n-len(hash)-1], "-.") + "-" + hash
}
