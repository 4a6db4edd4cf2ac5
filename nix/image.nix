# Image helpers: store paths as container image references, and image specs.
{ writeText }:
let
  # An OCI repository component is lowercase letters, digits and the
  # separators . _ -; a store name may hold more (+, =, ?). Such names are
  # referenced by their hash alone, which the registry resolves the same way.
  validRepo = name: builtins.match "[a-z0-9]+([._-][a-z0-9]+)*" name != null;
in
{
  # imageRef pkg -> "nix.internal/<hash>-<name>"
  #
  # The reference of the image kix's registry serves for a package (its
  # runtime closure) or an image spec. The string keeps the package's
  # context, so a manifest that uses it depends on the package.
  imageRef =
    pkg:
    let
      path = toString pkg;
      base = builtins.baseNameOf path;
      repo = if validRepo base then base else builtins.substring 0 32 base;
    in
    builtins.replaceStrings [ "${builtins.storeDir}/${base}" ] [ "nix.internal/${repo}" ] path;

  # imageSpec { name, systems } -> a store path holding the spec as JSON
  #
  # systems maps a Nix system ("x86_64-linux") to that system's image:
  #   roots         store paths whose closure is the image's file system
  #   entrypoint    list of strings
  #   cmd           list of strings
  #   env           attrset of strings
  #   workingDir    string
  #   user          string ("uid[:gid]")
  #   exposedPorts  list of strings ("8080/tcp")
  #   labels        attrset of strings
  # One system gives an image; several give an image index. The spec's store
  # path references every root, so its closure is all the images'.
  imageSpec =
    { name, systems }:
    writeText "${name}-image-spec.json" (
      builtins.toJSON {
        kixImageSpec = 1;
        inherit name;
        systems = builtins.mapAttrs (_: s: {
          roots = map toString (s.roots or [ ]);
          entrypoint = s.entrypoint or [ ];
          cmd = s.cmd or [ ];
          env = s.env or { };
          workingDir = s.workingDir or "";
          user = s.user or "";
          exposedPorts = s.exposedPorts or [ ];
          labels = s.labels or { };
        }) systems;
      }
    );
}
