# An app written the way ux.md's journey 1 writes it: kix.resources with
# named lists, images by store path. `version` changes what is deployed and
# `withWorker` drops an object, for tests of updates and prunes.
{
  version ? 1,
  namespace ? "shop",
  withWorker ? true,
}:
let
  fixtures = import ../default.nix { };
  inherit (fixtures.lib) kix;
in
kix.resources {
  none.Namespace.${namespace} = { };
  ${namespace} = {
    Deployment.web.spec = {
      replicas = 1;
      selector.matchLabels.app = "web";
      template = {
        metadata.labels.app = "web";
        spec.containers = kix.namedList {
          web = {
            image = kix.image fixtures.webserver;
            env = kix.namedList {
              VERSION.value = toString version;
            };
            ports = [ { containerPort = 8080; } ];
          };
        };
      };
    };
    Service.web.spec = {
      selector.app = "web";
      ports = [
        {
          port = 80;
          targetPort = 8080;
        }
      ];
    };
    ConfigMap =
      {
        settings.data = {
          version = toString version;
          greeting = "${fixtures.hello}/bin/hello";
        };
      }
      // (if withWorker then { worker.data.role = "worker"; } else { });
  };
}
