package nix

import (
	"crypto/rand"
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode"

	"github.com/nix-community/go-nix/pkg/narinfo"
	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"github.com/nix-community/go-nix/pkg/nixhash"
)

// Binary cache keys are ed25519 keys in Nix's own text format, the one
// `nix-store --generate-binary-cache-key` writes:
//
//	secret: <name>:<base64 of the 64-byte ed25519 private key>
//	public: <name>:<base64 of the 32-byte public key>
//
// A narinfo's signature ("Sig: <name>:<base64>") is over its Fingerprint.

// GenerateSigningKey makes a new key pair named name and returns both halves
// in Nix's format.
func GenerateSigningKey(name string) (secret, public string, err error) {
	if name == "" || strings.Contains(name, ":") || strings.IndexFunc(name, unicode.IsSpace) >= 0 {
		// trusted-public-keys is a space-separated list of name:key.
		return "", "", fmt.Errorf("key name %q: want a non-empty name without ':' or spaces", name)
	}
	sk, pk, err := signature.GenerateKeypair(name, rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generating key %s: %w", name, err)
	}
	return sk.String(), pk.String(), nil
}

// SigningKey is a secret key that signs narinfos, with its name.
type SigningKey struct {
	Name   string
	secret signature.SecretKey
}

// ParseSigningKey reads a secret key in Nix's format.
func ParseSigningKey(s string) (*SigningKey, error) {
	s = strings.TrimSpace(s)
	sk, err := signature.LoadSecretKey(s)
	if err != nil {
		return nil, err
	}
	return &SigningKey{Name: sk.ToPublicKey().Name, secret: sk}, nil
}

// ReadSigningKey reads a secret key file (as written by `kix cache keygen`
// or `nix-store --generate-binary-cache-key`).
func ReadSigningKey(file string) (*SigningKey, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading secret key: %w", err)
	}
	k, err := ParseSigningKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("secret key %s: %w", file, err)
	}
	return k, nil
}

// Public returns the public half in Nix's format ("name:base64").
func (k *SigningKey) Public() string { return k.secret.ToPublicKey().String() }

// Sign adds k's signature to ni, replacing any earlier signature by a key of
// the same name.
func (k *SigningKey) Sign(ni *narinfo.NarInfo) error {
	sig, err := k.secret.Sign(nil, Fingerprint(ni))
	if err != nil {
		return fmt.Errorf("signing narinfo of %s: %w", ni.StorePath, err)
	}
	ni.Signatures = slices.DeleteFunc(ni.Signatures, func(s signature.Signature) bool { return s.Name == k.Name })
	ni.Signatures = append(ni.Signatures, sig)
	return nil
}

// Signed reports whether ni carries a valid signature by k. One in k's name
// that does not verify (an old key of that name, a narinfo changed since)
// does not count.
func (k *SigningKey) Signed(ni *narinfo.NarInfo) bool {
	public, fp := k.secret.ToPublicKey(), Fingerprint(ni)
	return slices.ContainsFunc(ni.Signatures, func(s signature.Signature) bool {
		return s.Name == k.Name && public.Verify(fp, s)
	})
}

// Fingerprint is what a narinfo's signatures sign (see fingerprint).
func Fingerprint(ni *narinfo.NarInfo) string { return fingerprint(ni) }

// NarinfoOf returns a narinfo for info whose NAR is at url (relative to the
// cache), compressed with compression. FileHash and FileSize are left out:
// the file is compressed as it is served, and Nix checks the NAR hash. The
// signatures info carries are kept.
func NarinfoOf(info *PathInfo, url, compression string) (*narinfo.NarInfo, error) {
	narHash, err := nixhash.ParseAny(info.NarHash, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: NAR hash %q: %w", info.Path, info.NarHash, err)
	}
	ni := &narinfo.NarInfo{
		StorePath:   info.Path,
		URL:         url,
		Compression: compression,
		NarHash:     narHash,
		NarSize:     info.NarSize,
		CA:          info.CA,
	}
	for _, r := range info.References {
		ni.References = append(ni.References, BaseName(r))
	}
	slices.Sort(ni.References)
	if info.Deriver != "" {
		ni.Deriver = BaseName(info.Deriver)
	}
	for _, s := range info.Signatures {
		sig, err := signature.ParseSignature(s)
		if err != nil {
			continue // a signature Nix could not check either
		}
		ni.Signatures = append(ni.Signatures, sig)
	}
	return ni, nil
}
