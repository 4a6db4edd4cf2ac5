package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kix-project/kix/api/v1alpha1"
	"github.com/kix-project/kix/internal/deploy"
)

// installerVerbs are what the deploy engine does to the hello-web block's
// objects and its inventory, as the README says: read, apply (server-side,
// creating), prune.
var installerVerbs = []string{"get", "list", "create", "patch", "delete"}

// serviceAccount makes a service account with no rights.
func serviceAccount(t *testing.T, ns, name string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := newClient(t).Create(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
}

// grant gives a service account, by a Role of its namespace bound to it,
// the verbs on ConfigMaps (the block's and the inventory) and on
// Deployments; granting again changes the Role.
func grant(t *testing.T, ns, sa string, configMapVerbs, deploymentVerbs []string) {
	t.Helper()
	ctx := context.Background()
	cl := newClient(t)
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: configMapVerbs},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: deploymentVerbs},
		},
	}
	err := cl.Create(ctx, role)
	if apierrors.IsAlreadyExists(err) {
		update(t, cl, &rbacv1.Role{ObjectMeta: role.ObjectMeta}, func(r *rbacv1.Role) { r.Rules = role.Rules })
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}
	if err := cl.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
}

// createAs creates an Installation that names a service account to apply
// as.
func createAs(t *testing.T, cl client.Client, inst *v1alpha1.Installation, serviceAccount string) {
	t.Helper()
	inst.Spec.ServiceAccountName = serviceAccount
	if err := cl.Create(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
}

// refusedAs checks that an Installation is not Ready because the server
// refused its service account, naming the user and the inventory it could
// not read, and applied nothing.
func refusedAs(t *testing.T, ns, name, sa string) {
	t.Helper()
	inst := waitReady(t, ns, name, metav1.ConditionFalse, ReasonApplyFailed)
	msg := readyCondition(inst.Status.Conditions).Message
	for _, says := range []string{"forbidden", `"system:serviceaccount:` + ns + ":" + sa + `"`, "kix-installation-" + name} {
		if !strings.Contains(msg, says) {
			t.Errorf("message %q does not say %s", msg, says)
		}
	}
	nothingApplied(t, ns, name)
}

// An Installation is applied with its service account's rights, not the
// controller's: with none it is refused and applies nothing; with too few
// the refusal names the object; with a Role for its namespace's ConfigMaps
// and Deployments it goes Ready.
func TestInstallationAsServiceAccount(t *testing.T) {
	cl, ns := startInstallations(t)
	ctx := context.Background()
	serviceAccount(t, ns, "installer")
	inst := newInstallation(ns, "web", "hello-web", "1.0", "")
	createAs(t, cl, inst, "installer")
	refusedAs(t, ns, "web", "installer")

	// Failures are retried: the next ones find the new rights.
	readOnly := []string{"get", "list"}
	grant(t, ns, "installer", installerVerbs, readOnly)
	deployment := "Deployment/" + ns + "/web: "
	eventually(t, 60*time.Second, "the Deployment refused", func() (bool, string) {
		var inst v1alpha1.Installation
		if err := newClient(t).Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &inst); err != nil {
			return false, err.Error()
		}
		c := readyCondition(inst.Status.Conditions)
		if c == nil {
			return false, "no Ready condition"
		}
		return c.Reason == ReasonApplyFailed && strings.Contains(c.Message, deployment) && strings.Contains(c.Message, "forbidden"), c.Message
	})
	// A stage of new objects is applied at once and what it created is
	// removed again when one is refused: greeting does not stay. (A retry
	// in flight may hold it for a moment, so this waits for it to go.)
	eventually(t, 30*time.Second, "greeting removed again", func() (bool, string) {
		_, err := configMap(t, ns, "greeting")
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if err := newClient(t).Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment web applied without the right: %v", err)
	}

	grant(t, ns, "installer", installerVerbs, installerVerbs)
	inst = waitReady(t, ns, "web", metav1.ConditionTrue, ReasonApplied)
	if inst.Status.Objects != 3 {
		t.Errorf("status %+v", inst.Status)
	}
	if cm, err := configMap(t, ns, "greeting"); err != nil || cm.Labels[LabelInstallation] != "web" {
		t.Errorf("greeting: %v %v", cm.Labels, err)
	}
	if err := newClient(t).Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &appsv1.Deployment{}); err != nil {
		t.Errorf("Deployment web: %v", err)
	}
}

// --default-service-account is the service account of Installations that
// name none.
func TestInstallationDefaultServiceAccount(t *testing.T) {
	cl, _ := startController(t, func(o *Options) { o.DefaultServiceAccount = "kix-installer" })
	publishCatalog(t)
	ns := installNamespace(t, cl)
	ctx := context.Background()
	serviceAccount(t, ns, "kix-installer")
	if err := cl.Create(ctx, newInstallation(ns, "web", "hello-web", "1.0", "")); err != nil {
		t.Fatal(err)
	}
	refusedAs(t, ns, "web", "kix-installer")
	grant(t, ns, "kix-installer", installerVerbs, installerVerbs)
	waitReady(t, ns, "web", metav1.ConditionTrue, ReasonApplied)
}

// The API server gives an impersonated service account's user the
// groups of a service account of its namespace, so a binding to those
// groups holds for it too; the controller itself is not impersonated.
func TestDeployersImpersonate(t *testing.T) {
	d := NewDeployers(kube.Get(t).RESTConfig())
	for _, tc := range []struct {
		user   string
		groups []string
	}{
		{"system:serviceaccount:tenant:installer", []string{"system:serviceaccounts", "system:serviceaccounts:tenant", "system:authenticated"}},
		{"", []string{"system:masters", "system:authenticated"}},
	} {
		cs, err := kubernetes.NewForConfig(d.configAs(tc.user))
		if err != nil {
			t.Fatal(err)
		}
		review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(context.Background(), &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := review.Status.UserInfo
		if tc.user != "" && got.Username != tc.user {
			t.Errorf("user %q, want %q", got.Username, tc.user)
		}
		for _, g := range tc.groups {
			if !slices.Contains(got.Groups, g) {
				t.Errorf("%q: groups %v lack %s", tc.user, got.Groups, g)
			}
		}
	}
	first, err := d.As("system:serviceaccount:tenant:installer")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := d.As("system:serviceaccount:tenant:installer"); again != first {
		t.Error("a second Manager for the same service account")
	}
	if own, _ := d.As(""); own == first {
		t.Error("the controller's Manager is the service account's")
	}

	// Only the most recently used identities' Managers are kept.
	d.managers = lru.New(2)
	as := func(user string) *deploy.Manager {
		m, err := d.As(user)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := as("system:serviceaccount:t:a"), as("system:serviceaccount:t:b")
	if as("system:serviceaccount:t:a") != a {
		t.Error("a Manager was made again while it was among the last two used")
	}
	as("system:serviceaccount:t:c") // evicts b, the least recently used
	if as("system:serviceaccount:t:b") == b {
		t.Error("a third identity did not evict the least recently used Manager")
	}
}

// spec.serviceAccountName must be a service account's name: with a
// colon, system:serviceaccount:<namespace>:a:b would be a plain user, and
// upper case names no service account. The CRD refuses both.
func TestInstallationServiceAccountNameValidated(t *testing.T) {
	c := kube.Get(t)
	crds(t, c)
	cl := newClient(t)
	ns := c.Namespace(t)
	for _, name := range []string{"a:b", "Admin", "-x"} {
		inst := newInstallation(ns, "web", "hello-web", "1.0", "")
		inst.Spec.ServiceAccountName = name
		err := cl.Create(context.Background(), inst)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "serviceAccountName") {
			t.Errorf("serviceAccountName %q: create gave %v, want Invalid naming the field", name, err)
		}
	}
	inst := newInstallation(ns, "web", "hello-web", "1.0", "")
	inst.Spec.ServiceAccountName = "installer.team-a"
	if err := cl.Create(context.Background(), inst); err != nil {
		t.Errorf("a service account's name refused: %v", err)
	}
}

// The reconciler checks the name too (a CRD from before the check lets
// anything through): a name no service account can have is a condition,
// not a user to impersonate.
func TestServiceAccountUser(t *testing.T) {
	for _, tc := range []struct {
		spec, fallback, want string
		invalid              bool
	}{
		{"", "", "", false},
		{"installer", "", "system:serviceaccount:team-a:installer", false},
		{"", "kix-installer", "system:serviceaccount:team-a:kix-installer", false},
		{"installer", "kix-installer", "system:serviceaccount:team-a:installer", false},
		{"a:b", "", "", true},
		{"Admin", "", "", true},
		{"", "x:y", "", true},
	} {
		inst := newInstallation("team-a", "web", "hello-web", "1.0", "")
		inst.Spec.ServiceAccountName = tc.spec
		got, err := serviceAccountUser(inst, tc.fallback)
		var cond *conditionError
		if tc.invalid != (errors.As(err, &cond) && cond.reason == ReasonInvalidServiceAccount) || got != tc.want {
			t.Errorf("serviceAccountUser(%q, %q) = %q, %v; want %q (invalid: %v)", tc.spec, tc.fallback, got, err, tc.want, tc.invalid)
		}
	}
}

// A tenant block is made before the service account's rights are tried:
// an Installation refused while its values change keeps one block, not
// one for each values it had.
func TestRefusedInstallationKeepsOneTenantBlock(t *testing.T) {
	cl, ns := startInstallations(t)
	inst := newInstallation(ns, "web", "hello-web", "1.0", `{"greeting":"one"}`)
	createAs(t, cl, inst, "nobody")
	refusedAs(t, ns, "web", "nobody")
	first := tenantBlocks(t, ns, "web")
	if len(first) != 1 {
		t.Fatalf("tenant blocks %v; want one", first)
	}
	update(t, cl, inst, func(i *v1alpha1.Installation) { i.Spec.Values.Raw = []byte(`{"greeting":"two"}`) })
	eventually(t, 30*time.Second, "only the new values' block", func() (bool, string) {
		names := tenantBlocks(t, ns, "web")
		return len(names) == 1 && names[0] != first[0], fmt.Sprint(names)
	})
	refusedAs(t, ns, "web", "nobody")
}
