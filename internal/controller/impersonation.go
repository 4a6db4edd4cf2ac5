package controller

import (
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/rest"
	"k8s.io/utils/lru"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/deploy"
)

// Deployers hands out a deploy.Manager for each identity the controller
// applies Installations as: its own, or a service account it
// impersonates. A Manager discovers the cluster's kinds and keeps what it
// learnt, so each identity's is made once and reused; the least recently
// used go when there are more than maxDeployers, so tenants naming ever
// new accounts cannot grow the controller without bound.
type Deployers struct {
	config *rest.Config

	mu       sync.Mutex
	managers *lru.Cache // *deploy.Manager by impersonated user; "" is the controller itself
}

// maxDeployers is how many identities' Managers are kept.
const maxDeployers = 256

// NewDeployers makes Managers from cfg, the controller's own connection.
func NewDeployers(cfg *rest.Config) *Deployers {
	return &Deployers{config: cfg, managers: lru.New(maxDeployers)}
}

// As returns the Manager acting as user, impersonating it, or with the
// controller's own rights if user is "". The API server gives an
// impersonated service account's user its groups.
func (d *Deployers) As(user string) (*deploy.Manager, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := d.managers.Get(user); ok {
		return m.(*deploy.Manager), nil
	}
	m, err := deploy.NewManager(d.configAs(user))
	if err != nil {
		return nil, err
	}
	d.managers.Add(user, m)
	return m, nil
}

// configAs is the controller's connection acting as user ("": itself).
func (d *Deployers) configAs(user string) *rest.Config {
	cfg := rest.CopyConfig(d.config)
	if user != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	}
	return cfg
}

// serviceAccountUser is the user an Installation's objects are written
// as: its spec.serviceAccountName, or else the default service account
// name, in its namespace; "" (the controller itself) if both are empty. A
// name that is not a service account's (the CRD refuses it, but an older
// CRD did not) is a conditionError: the API server would take
// system:serviceaccount:<namespace>:a:b for a plain user.
func serviceAccountUser(inst *v1alpha1.Installation, defaultName string) (string, error) {
	name := inst.Spec.ServiceAccountName
	if name == "" {
		name = defaultName
	}
	if name == "" {
		return "", nil
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", &conditionError{reason: ReasonInvalidServiceAccount, msg: fmt.Sprintf("service account %q is not a service account's name: %s", name, strings.Join(errs, "; "))}
	}
	return serviceaccount.MakeUsername(inst.Namespace, name), nil
}
