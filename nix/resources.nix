# Writing Kubernetes objects as Nix attrsets.
let
  apiVersions = builtins.fromJSON (builtins.readFile ./api-versions.json);

  # The keys of an attrset in order, as builtins.attrNames returns them.
  mapToList = f: attrs: map (name: f name attrs.${name}) (builtins.attrNames attrs);

  expand =
    v:
    if builtins.isList v then
      map expand v
    else if builtins.isAttrs v && !(v ? outPath) then
      if v._namedlist or false then
        mapToList (name: item: { inherit name; } // expand item) (removeAttrs v [ "_namedlist" ])
      else
        builtins.mapAttrs (_: expand) v
    else
      v;
in
rec {
  inherit apiVersions;

  # namedList { web = { image = ...; }; } -> [ { name = "web"; image = ...; } ]
  #
  # Lists of named things (containers, ports, env, volumes) as attrsets, so
  # they merge and override by name. easykubenix writes the same thing as
  # `{ _namedlist = true; web = ...; }`, which kix also understands.
  namedList = attrs: { _namedlist = true; } // attrs;

  # resources { <namespace>.<Kind>.<name> = { ... }; } -> [ objects ]
  #
  # The namespace "none" holds cluster-scoped objects. apiVersion, kind,
  # metadata.name and metadata.namespace are filled in; apiVersion is known
  # for built-in kinds and must be given for custom resources. Named lists
  # anywhere inside become lists.
  resources =
    byNamespace:
    builtins.concatLists (
      mapToList (
        ns: kinds:
        builtins.concatLists (
          mapToList (
            kind: names:
            mapToList (
              name: body:
              let
                meta = body.metadata or { };
              in
              expand (
                {
                  apiVersion = body.apiVersion or apiVersions.${kind} or (throw "kix.resources: ${ns}.${kind}.${name}: set apiVersion; kix knows built-in kinds only");
                  inherit kind;
                }
                // body
                // {
                  metadata =
                    { inherit name; } // (if ns == "none" then { } else { namespace = ns; }) // meta;
                }
              )
            ) names
          ) kinds
        )
      ) byNamespace
    );
}
