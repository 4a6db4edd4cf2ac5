package registry

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// StaticAuth lets a request pull if it carries one of the configured
// credentials: HTTP basic user:password pairs, or bearer tokens (which
// containerd sends from a hosts.toml [header] section). It is the simple
// pull authentication clusters ask for; it is not a token service.
type StaticAuth struct {
	Basic  map[string]string // user -> password
	Tokens []string
}

// Authenticate implements Authenticator.
func (a *StaticAuth) Authenticate(r *http.Request) bool {
	if user, pass, ok := r.BasicAuth(); ok {
		want, known := a.Basic[user]
		return known && equal(pass, want)
	}
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		for _, t := range a.Tokens {
			if equal(token, t) {
				return true
			}
		}
	}
	return false
}

// Challenge implements Authenticator: basic if any users are configured,
// otherwise bearer.
func (a *StaticAuth) Challenge() string {
	if len(a.Basic) > 0 {
		return `Basic realm="kix"`
	}
	return `Bearer realm="kix"`
}

func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// ParseBasicAuth parses "user:password".
func ParseBasicAuth(s string) (user, password string, err error) {
	user, password, ok := strings.Cut(s, ":")
	if !ok || user == "" || password == "" {
		return "", "", fmt.Errorf("want USER:PASSWORD, got %q", s)
	}
	return user, password, nil
}
