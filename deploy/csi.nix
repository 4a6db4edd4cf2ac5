# The Kubernetes objects that run kix's CSI node plugin (csi.kix.dev) on
# every node: pods mount store path closures with an inline volume
#
#   volumes = [ { name = "nix"; csi = { driver = "csi.kix.dev";
#     volumeAttributes."x86_64-linux" = "${pkgs.hello}"; }; } ];
#
# Plain attrsets, no nixpkgs needed:
#
#   import ./deploy/csi.nix {
#     image = "nix.internal/<hash>-kix";          # an image with kix and mount(8)
#     substituters = [ "http://kix-cache.kix.svc:8080" ];
#     trustedPublicKeys = [ "kix-cache-1:..." ];
#   }
{
  image,
  namespace ? "kix",
  substituters,
  trustedPublicKeys,
  kubeletDir ? "/var/lib/kubelet",
  stateDir ? "/var/lib/kix-csi",
  # Run in the node's network namespace, to reach a cache on the node
  # itself; cluster DNS names still resolve.
  hostNetwork ? false,
}:
let
  name = "kix-csi";
  driver = "csi.kix.dev";
  labels."app.kubernetes.io/name" = name;
  socketDir = "${kubeletDir}/plugins/${driver}";
  hostPath = path: type: { inherit path type; };
  flags =
    builtins.concatMap (s: [ "--substituter" s ]) substituters
    ++ builtins.concatMap (k: [ "--trusted-public-key" k ]) trustedPublicKeys;
in
[
  {
    apiVersion = "storage.k8s.io/v1";
    kind = "CSIDriver";
    metadata.name = driver;
    spec = {
      # Inline volumes only: made on the node when a pod starts.
      volumeLifecycleModes = [ "Ephemeral" ];
      attachRequired = false;
      podInfoOnMount = false;
      fsGroupPolicy = "None";
    };
  }
  {
    apiVersion = "v1";
    kind = "ServiceAccount";
    metadata = { inherit name namespace labels; };
  }
  {
    apiVersion = "apps/v1";
    kind = "DaemonSet";
    metadata = { inherit name namespace labels; };
    spec = {
      selector.matchLabels = labels;
      template = {
        metadata = { inherit labels; };
        spec = {
          serviceAccountName = name;
          priorityClassName = "system-node-critical";
          inherit hostNetwork;
          dnsPolicy = if hostNetwork then "ClusterFirstWithHostNet" else "ClusterFirst";
          containers = [
            {
              inherit name image;
              args = [
                "csi"
                "--endpoint"
                "unix://${socketDir}/csi.sock"
                "--node-id"
                "$(NODE_NAME)"
                "--state-dir"
                stateDir
                "--kubelet-dir"
                kubeletDir
                "-v"
                "1"
              ] ++ flags;
              env = [
                {
                  name = "NODE_NAME";
                  valueFrom.fieldRef.fieldPath = "spec.nodeName";
                }
              ];
              # Bind mounts at the kubelet's targets need CAP_SYS_ADMIN and
              # must propagate back to the host. The kubelet folder holds
              # the plugin's socket and registration socket too; no mount
              # may sit inside it, or each restart of the pod would leave
              # another copy of that mount on the host.
              securityContext.privileged = true;
              volumeMounts = [
                {
                  name = "kubelet";
                  mountPath = kubeletDir;
                  mountPropagation = "Bidirectional";
                }
                {
                  name = "state";
                  mountPath = stateDir;
                }
              ];
            }
          ];
          volumes = [
            {
              name = "kubelet";
              hostPath = hostPath kubeletDir "Directory";
            }
            {
              name = "state";
              hostPath = hostPath stateDir "DirectoryOrCreate";
            }
          ];
        };
      };
    };
  }
]
