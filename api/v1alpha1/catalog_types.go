package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// BuildingBlockSpec describes one component of a catalogue.
type BuildingBlockSpec struct {
	// Block is the component's name, which Installations use.
	Block string `json:"block"`
	// +kubebuilder:validation:MinLength=1
	Version string `json:"version"`
	// +optional
	Description string `json:"description,omitempty"`
	// Manifests is the store path of the component's Kubernetes objects
	// (a manifests file or folder), built by the provider.
	// +kubebuilder:validation:Pattern=`^/nix/store/[0-9a-z]{32}-.+`
	Manifests string `json:"manifests"`
	// Source, if set, is where the component's Nix expression is, so an
	// Installation can customise it with values.
	// +optional
	Source *BlockSource `json:"source,omitempty"`
	// Owner is set on a block customised for one tenant's Installation.
	// +optional
	Owner *BlockOwner `json:"owner,omitempty"`
	// Values the block was customised with (for a tenant's block).
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Values *runtime.RawExtension `json:"values,omitempty"`
}

// BlockSource names a customisable block's Nix expression: File's value
// has an attribute Attribute with a `customize` function of values.
type BlockSource struct {
	File      string `json:"file"`
	Attribute string `json:"attribute"`
}

// BlockOwner is the Installation a customised block was made for.
type BlockOwner struct {
	Namespace    string `json:"namespace"`
	Installation string `json:"installation"`
}

// BuildingBlock is an entry of a catalogue: a Nix-built component that
// tenants browse with kubectl get buildingblocks and install with an
// Installation.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=kix,shortName=bb
// +kubebuilder:printcolumn:name="Block",type=string,JSONPath=`.spec.block`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Description",type=string,JSONPath=`.spec.description`
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner.namespace`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BuildingBlock struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BuildingBlockSpec `json:"spec"`
}

// BuildingBlockList is a list of BuildingBlocks.
//
// +kubebuilder:object:root=true
type BuildingBlockList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BuildingBlock `json:"items"`
}

// InstallationSpec says which block to install, at which version, how.
type InstallationSpec struct {
	// Block is the BuildingBlock's block name.
	// +kubebuilder:validation:MinLength=1
	Block string `json:"block"`
	// +kubebuilder:validation:MinLength=1
	Version string `json:"version"`
	// Values customise the block (its customize function is called with
	// them); the block as published if empty.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Values *runtime.RawExtension `json:"values,omitempty"`
	// ServiceAccountName is a service account of the Installation's
	// namespace whose rights the block's objects are applied, pruned and
	// deleted with (the controller impersonates it); without it, the
	// controller's --default-service-account, or if that is empty too, the
	// controller's own rights. A service account's name is a DNS-1123
	// subdomain, so the user impersonated is always
	// system:serviceaccount:<namespace>:<name>.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
}

// InstallationStatus is what the controller applied.
type InstallationStatus struct {
	// BuildingBlock is the name of the BuildingBlock applied (a tenant's
	// own when the Installation has values).
	// +optional
	BuildingBlock string `json:"buildingBlock,omitempty"`
	// StorePath of the manifests applied.
	// +optional
	StorePath string `json:"storePath,omitempty"`
	// Inventory is the ApplySet the objects are recorded in.
	// +optional
	Inventory string `json:"inventory,omitempty"`
	// Recorded is what the inventory records, kept here as well: the kinds
	// and other namespaces its objects may be of. Deleting the
	// Installation finds them through it when the inventory went first,
	// with the namespace.
	// +optional
	Recorded *InventoryRecord `json:"recorded,omitempty"`
	// Objects counts the objects applied last time; Pruned those deleted.
	// +optional
	Objects int `json:"objects,omitempty"`
	// +optional
	Pruned int `json:"pruned,omitempty"`
	// +optional
	LastApplied *metav1.Time `json:"lastApplied,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// InventoryRecord is what an Installation's inventory records.
type InventoryRecord struct {
	// GroupKinds of the objects, as "Kind.group" ("Deployment.apps",
	// "ConfigMap").
	// +optional
	GroupKinds []string `json:"groupKinds,omitempty"`
	// Namespaces of the objects other than the Installation's.
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
}

// Installation installs a BuildingBlock in its namespace and keeps it
// there: hand edits of its objects are reverted, a new version prunes what
// it dropped, and deleting the Installation removes its objects.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=kix,shortName=inst
// +kubebuilder:printcolumn:name="Block",type=string,JSONPath=`.spec.block`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Objects",type=integer,JSONPath=`.status.objects`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Installation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   InstallationSpec   `json:"spec"`
	Status InstallationStatus `json:"status,omitempty"`
}

// InstallationList is a list of Installations.
//
// +kubebuilder:object:root=true
type InstallationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Installation `json:"items"`
}
