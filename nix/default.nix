# kix's Nix library.
#
#   kix = import ./path/to/kix/nix { inherit pkgs; };
#
# It uses nothing from pkgs but `writeText`, so any package set works,
# including a small one made without nixpkgs.
{ pkgs }:
let
  image = import ./image.nix { inherit (pkgs) writeText; };
  resources = import ./resources.nix;
  modules = import ./modules.nix { inherit resources; };
  withKix = args: args // { specialArgs = { kix = self; } // args.specialArgs or { }; };

  self = {
    inherit (image) imageRef imageSpec;
    # kix.image pkg: the image reference of a package or image spec.
    image = image.imageRef;

    inherit (resources) namedList resources apiVersions;

    # evalModules { modules; specialArgs ? { }; } -> [ objects ]
    # Modules are called with config, kix and specialArgs.
    evalModules = args: modules.evalModules (withKix args);
    # The same, as { config; objects; }.
    evalModulesWithConfig = args: modules.evalModulesWithConfig (withKix args);
  };
in
self
