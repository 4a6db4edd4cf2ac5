# A small module system for composing Kubernetes objects from several
# files, without nixpkgs' lib.
#
#   kix.evalModules {
#     modules = [ ./base.nix ./shop.nix { kubernetes.resources.shop.Service.web.spec.ports = [ ... ]; } ];
#     specialArgs = { inherit pkgs; };
#   }
#
# A module is an attrset, a function of { config, kix, ... } (plus
# specialArgs) returning one, or a path to a file holding either. A module
# may list more modules in `imports`. All modules' attrsets are merged
# deeply: attrsets key by key, lists concatenated (use kix.namedList for
# lists that should merge by name); two different values for the same
# scalar are an error naming its path.
#
# The objects are config.kubernetes.resources (namespace.Kind.name, as for
# kix.resources) followed by config.kubernetes.objects (a list).
{ resources }:
let
  inherit (builtins)
    isAttrs
    isList
    isFunction
    concatMap
    foldl'
    mapAttrs
    concatStringsSep
    ;

  merge =
    path: a: b:
    if isAttrs a && isAttrs b && !(a ? outPath) && !(b ? outPath) then
      a // mapAttrs (k: bv: if a ? ${k} then merge (path ++ [ k ]) a.${k} bv else bv) b
    else if isList a && isList b then
      a ++ b
    else if a == b then
      a
    else
      throw "kix.evalModules: conflicting definitions of ${concatStringsSep "." path}";

  evalModulesWithConfig =
    {
      modules,
      specialArgs ? { },
    }:
    let
      kix = specialArgs.kix or (throw "kix.evalModules: pass kix in specialArgs");
      args = specialArgs // {
        inherit config kix;
      };
      load = m: if builtins.isPath m || builtins.isString m then import m else m;
      collect =
        ms:
        concatMap (
          m:
          let
            mod = load m;
            body = if isFunction mod then mod args else mod;
          in
          [ (removeAttrs body [ "imports" ]) ] ++ collect (body.imports or [ ])
        ) ms;
      config = foldl' (merge [ ]) { } (collect modules);
    in
    {
      inherit config;
      objects =
        resources.resources (config.kubernetes.resources or { }) ++ (config.kubernetes.objects or [ ]);
    };
in
{
  inherit evalModulesWithConfig;
  # evalModules { modules; specialArgs; } -> [ objects ]
  evalModules = args: (evalModulesWithConfig args).objects;
}
