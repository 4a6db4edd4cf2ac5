// Package v1alpha1 holds kix's custom resources, API group kix.dev:
//
//   - NixImage (namespaced): an image made on demand from packages of a
//     package set, built by kix controller and served by kix registry;
//   - BuildingBlock (cluster-scoped): an entry of a provider's catalogue,
//     the manifests of a Nix-built component;
//   - Installation (namespaced): a tenant's install of a building block,
//     kept in sync with it by the controller.
//
// +kubebuilder:object:generate=true
// +groupName=kix.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of kix's resources.
	GroupVersion = schema.GroupVersion{Group: "kix.dev", Version: "v1alpha1"}

	schemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types to a scheme.
	AddToScheme = schemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&NixImage{}, &NixImageList{},
		&BuildingBlock{}, &BuildingBlockList{},
		&Installation{}, &InstallationList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// ConditionReady is the condition every kix resource reports.
const ConditionReady = "Ready"
