# A provider's catalogue for the controller's tests and the demo: one block
# in two versions (2.0 drops the "legacy" ConfigMap) that takes values, and
# one whose customisation fails, and one the cluster cannot apply (a kind
# it does not serve).
{
  system ? builtins.currentSystem,
}:
let
  fixtures = import ./default.nix { inherit system; };
  inherit (fixtures.lib) kix pkgs;

  helloWeb =
    {
      version,
      greeting ? "Hello from the catalogue",
      replicas ? 1,
      legacy ? true,
    }:
    pkgs.writeText "hello-web-${version}.json" (
      builtins.toJSON (
        [
          {
            apiVersion = "v1";
            kind = "ConfigMap";
            metadata.name = "greeting";
            data = {
              inherit greeting version;
            };
          }
          {
            apiVersion = "apps/v1";
            kind = "Deployment";
            metadata.name = "web";
            spec = {
              inherit replicas;
              selector.matchLabels.app = "hello-web";
              template = {
                metadata.labels.app = "hello-web";
                spec.containers = [
                  {
                    name = "web";
                    image = kix.image fixtures.webserver;
                  }
                ];
              };
            };
          }
        ]
        ++ (
          if legacy then
            [
              {
                apiVersion = "v1";
                kind = "ConfigMap";
                metadata.name = "legacy";
                data.note = "only in 1.0";
              }
            ]
          else
            [ ]
        )
      )
    );
in
{
  hello-web = {
    version = "1.0";
    description = "A web page that says hello";
    manifests = helloWeb { version = "1.0"; };
    customize = values: helloWeb ({ version = "1.0"; } // values);
  };
  hello-web-2 = {
    name = "hello-web";
    version = "2.0";
    description = "A web page that says hello, without the legacy settings";
    manifests = helloWeb {
      version = "2.0";
      legacy = false;
    };
    customize =
      values:
      helloWeb (
        {
          version = "2.0";
          legacy = false;
        }
        // values
      );
  };
  fussy = {
    version = "0.1";
    description = "A block whose values must include a size";
    manifests = helloWeb { version = "0.1"; };
    customize =
      values:
      if values ? size then helloWeb { version = "0.1"; } else throw "fussy: values must set size";
  };
  broken = {
    version = "0.1";
    description = "A block naming a kind no cluster serves";
    manifests = pkgs.writeText "broken.json" (
      builtins.toJSON [
        {
          apiVersion = "v1";
          kind = "ConfigMap";
          metadata.name = "broken-settings";
          data.a = "b";
        }
        {
          apiVersion = "example.com/v1";
          kind = "NoSuchKind";
          metadata.name = "nothing";
        }
      ]
    );
  };
}
