package nixlib

import "testing"

func TestAPIVersions(t *testing.T) {
	if _, err := apiVersions(); err != nil {
		t.Fatalf("api-versions.json: %v", err)
	}
	for kind, want := range map[string]string{"Deployment": "apps/v1", "ConfigMap": "v1", "CustomResourceDefinition": "apiextensions.k8s.io/v1"} {
		if got, ok := APIVersion(kind); !ok || got != want {
			t.Errorf("APIVersion(%s) = %q, %v; want %q", kind, got, ok, want)
		}
	}
	if _, ok := APIVersion("NixImage"); ok {
		t.Error("custom kinds have no built-in apiVersion")
	}
}
