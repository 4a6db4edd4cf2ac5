# kix, deployed by kix:
#
#   kix apply -f deploy --inventory kix --wait \
#     --argstr image=registry.example.org/kix:1.0 --argstr packageSet=/nix/store/...-pkgs
#
# The CRDs (config/crd) and the controller's ClusterRole (config/rbac) are
# the files controller-gen writes; around them: the namespace, a service
# account bound to that role and, unless defaultServiceAccount is set, to
# installerRole (what Installations may apply is the provider's choice),
# and a Deployment whose pod runs
# `kix controller` beside `kix registry`, which serves the images the
# controller builds.
#
# Nodes have Nix: the pod mounts the node's /nix, so builds land in the
# node's store, which kix registry serves and kix's CSI driver fills. The
# image holds kix and Nix outside /nix (or give `path`, a PATH of store
# paths on the nodes, and any small image).
{
  image,
  namespace ? "kix",
  # How the image runs kix.
  command ? [ "kix" ],
  # PATH in the containers (null: the image's).
  path ? null,
  # The package set NixImages' contents name: a path the pod sees, such as
  # a store path on the nodes (null: only NixImages naming spec.packageSet
  # build).
  packageSet ? null,
  # kix registry's port, and its host[:port] as nodes pull from it:
  # status.image names it; point the nodes' containerd at it.
  registryPort ? 5000,
  registryHost ? "kix-registry.${namespace}.svc:${toString registryPort}",
  metricsPort ? 8080,
  healthPort ? 8081,
  # Run in the node's network namespace (registry and probes on node ports).
  hostNetwork ? false,
  # "HOST:PORT" of the API server, for clusters whose pods cannot reach it
  # by its Service (no kube-proxy).
  apiServer ? null,
  # The ClusterRole bound to the controller's own account, which
  # Installations naming no service account apply with; not bound when
  # defaultServiceAccount is set, since then every Installation applies as
  # an account of its namespace.
  installerRole ? "cluster-admin",
  # The service account (in each Installation's namespace) an Installation
  # naming none applies as; null: the controller's own account, with
  # installerRole. Set it when tenants may create Installations.
  defaultServiceAccount ? null,
  replicas ? 1,
  resync ? "5m",
  maxBuilds ? 2,
  # nix.conf for builds in the pod (mounted at /etc/nix).
  nixConf ? ''
    experimental-features = nix-command flakes
    build-users-group =
    # The pod isolates builds; Nix's own sandbox needs privileges it has not.
    sandbox = false
  '',
  # Arguments of ./csi.nix to deploy kix's CSI driver too, or null.
  csi ? null,
}:
let
  name = "kix";
  labels."app.kubernetes.io/name" = name;
  meta = extra: { inherit namespace labels; } // extra;
  optional = cond: list: if cond then list else [ ];

  env =
    optional (path != null) [
      {
        name = "PATH";
        value = path;
      }
    ]
    ++ [
      {
        name = "NIX_CONF_DIR";
        value = "/etc/nix";
      }
      {
        # kix controller --builder job with --build-job-host-root runs
        # build Jobs on this node, whose store it reads.
        name = "NODE_NAME";
        valueFrom.fieldRef.fieldPath = "spec.nodeName";
      }
    ]
    ++ optional (apiServer != null) (
      let
        parts = builtins.match "(.*):([0-9]+)" apiServer;
      in
      if parts == null then
        throw "apiServer must be HOST:PORT, not ${apiServer}"
      else
        [
          {
            name = "KUBERNETES_SERVICE_HOST";
            value = builtins.elemAt parts 0;
          }
          {
            name = "KUBERNETES_SERVICE_PORT";
            value = builtins.elemAt parts 1;
          }
        ]
    );

  mounts = [
    {
      name = "nix";
      mountPath = "/nix";
    }
    {
      name = "nix-conf";
      mountPath = "/etc/nix";
    }
    {
      name = "tmp";
      mountPath = "/tmp";
    }
  ];

  probe = port: p: {
    httpGet = {
      path = p;
      inherit port;
    };
    periodSeconds = 5;
  };

  controller = {
    name = "controller";
    inherit image command env;
    args = [
      "controller"
      "--registry"
      registryHost
      "--leader-elect"
      "--leader-election-namespace"
      namespace
      "--metrics-bind-address"
      ":${toString metricsPort}"
      "--health-probe-bind-address"
      ":${toString healthPort}"
      "--resync"
      resync
      "--max-builds"
      (toString maxBuilds)
      "--cache-dir"
      "/tmp/kix-images"
    ] ++ optional (packageSet != null) [
      "--package-set"
      (toString packageSet)
    ] ++ optional (defaultServiceAccount != null) [
      "--default-service-account"
      defaultServiceAccount
    ];
    ports = [
      {
        name = "metrics";
        containerPort = metricsPort;
      }
      {
        name = "health";
        containerPort = healthPort;
      }
    ];
    readinessProbe = probe healthPort "/readyz";
    livenessProbe = probe healthPort "/healthz";
    volumeMounts = mounts;
  };

  registry = {
    name = "registry";
    inherit image command env;
    args = [
      "registry"
      "--listen"
      ":${toString registryPort}"
      "--cache-dir"
      "/tmp/kix-registry"
    ] ++ optional (packageSet != null) [
      "--package-set"
      (toString packageSet)
    ];
    ports = [
      {
        name = "registry";
        containerPort = registryPort;
      }
    ];
    readinessProbe = probe registryPort "/healthz";
    volumeMounts = mounts;
  };

  binding = bindingName: role: {
    apiVersion = "rbac.authorization.k8s.io/v1";
    kind = "ClusterRoleBinding";
    metadata = {
      name = bindingName;
      inherit labels;
    };
    roleRef = {
      apiGroup = "rbac.authorization.k8s.io";
      kind = "ClusterRole";
      name = role;
    };
    subjects = [
      {
        kind = "ServiceAccount";
        inherit name namespace;
      }
    ];
  };
in
[
  {
    apiVersion = "v1";
    kind = "Namespace";
    metadata = {
      name = namespace;
      inherit labels;
    };
  }
  # What controller-gen writes, read as manifests.
  "${../config/crd}"
  "${../config/rbac}"
  {
    apiVersion = "v1";
    kind = "ServiceAccount";
    metadata = meta { inherit name; };
  }
  (binding "kix-controller" "kix-controller")
]
++ optional (defaultServiceAccount == null) [ (binding "kix-installer" installerRole) ]
++ [
  {
    apiVersion = "v1";
    kind = "ConfigMap";
    metadata = meta { name = "kix-nix-conf"; };
    data."nix.conf" = nixConf;
  }
  {
    apiVersion = "apps/v1";
    kind = "Deployment";
    metadata = meta { inherit name; };
    spec = {
      inherit replicas;
      selector.matchLabels = labels;
      template = {
        metadata = { inherit labels; };
        spec = {
          serviceAccountName = name;
          inherit hostNetwork;
          containers = [
            controller
            registry
          ];
          volumes = [
            {
              name = "nix";
              hostPath = {
                path = "/nix";
                type = "Directory";
              };
            }
            {
              name = "nix-conf";
              configMap.name = "kix-nix-conf";
            }
            {
              name = "tmp";
              emptyDir = { };
            }
          ];
        };
      };
    };
  }
  {
    apiVersion = "v1";
    kind = "Service";
    metadata = meta { name = "kix-registry"; };
    spec = {
      selector = labels;
      ports = [
        {
          name = "registry";
          port = registryPort;
          targetPort = "registry";
        }
      ];
    };
  }
]
++ optional (csi != null) (import ./csi.nix ({ inherit image namespace; } // csi))
