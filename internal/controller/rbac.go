package controller

// The permissions kix controller needs for itself; config/rbac/role.yaml
// (ClusterRole kix-controller) is generated from these markers by
// `make generate`. What Installations apply is the provider's choice and is
// bound separately (deploy/default.nix: installerRole), or to the service
// accounts Installations are applied as, which the controller impersonates.
//
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=impersonate
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get
// +kubebuilder:rbac:groups=kix.dev,resources=niximages;installations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=kix.dev,resources=niximages/status;installations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kix.dev,resources=niximages/finalizers;installations/finalizers,verbs=update
// +kubebuilder:rbac:groups=kix.dev,resources=buildingblocks,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods/log,verbs=get
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch;update
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps;secrets;services;serviceaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch
