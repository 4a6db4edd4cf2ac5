package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NixImageSpec says which packages an image holds and how it runs.
type NixImageSpec struct {
	// Contents are attribute names in the package set; the image holds
	// their runtime closures, with PATH set to their bin folders.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z_][A-Za-z0-9_'.-]*$`
	Contents []string `json:"contents"`
	// Tag is shown with the image; images are always named by digest.
	// +optional
	Tag string `json:"tag,omitempty"`
	// Entrypoint of the image; if empty and the single package has one
	// program, that program.
	// +optional
	Entrypoint []string `json:"entrypoint,omitempty"`
	// Cmd: arguments to the entrypoint.
	// +optional
	Cmd []string `json:"cmd,omitempty"`
	// Env: variables set in the image, beside PATH.
	// +optional
	Env []EnvVar `json:"env,omitempty"`
	// Systems the image is built for (Nix systems, x86_64-linux); the
	// controller's own if empty. Several give an image index.
	// +optional
	Systems []string `json:"systems,omitempty"`
	// PackageSet overrides the controller's --package-set: a Nix file or
	// flake whose attributes Contents names. The controller builds only the
	// package sets its --allow-package-set names (building one runs its
	// code with the controller's rights).
	// +optional
	PackageSet string `json:"packageSet,omitempty"`
}

// EnvVar is an environment variable of an image.
type EnvVar struct {
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// NixImagePhase is where a NixImage's build is.
// +kubebuilder:validation:Enum=Pending;Building;Built;Failed
type NixImagePhase string

// The phases of a NixImage.
const (
	NixImagePending  NixImagePhase = "Pending"
	NixImageBuilding NixImagePhase = "Building"
	NixImageBuilt    NixImagePhase = "Built"
	NixImageFailed   NixImagePhase = "Failed"
)

// NixImageStatus is what the controller made of a NixImage.
type NixImageStatus struct {
	// +optional
	Phase NixImagePhase `json:"phase,omitempty"`
	// Image is a pullable reference by digest, served by kix registry.
	// +optional
	Image string `json:"image,omitempty"`
	// StorePath of the image spec the image is served from.
	// +optional
	StorePath string `json:"storePath,omitempty"`
	// Message explains the phase; for a failed build, the end of its log.
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation of the spec the status is for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// NixImage is an image built on demand from packages of a Nix package set.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=kix,shortName=nimg
// +kubebuilder:printcolumn:name="Tag",type=string,JSONPath=`.spec.tag`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.image`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NixImage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   NixImageSpec   `json:"spec"`
	Status NixImageStatus `json:"status,omitempty"`
}

// NixImageList is a list of NixImages.
//
// +kubebuilder:object:root=true
type NixImageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NixImage `json:"items"`
}
