# Fixtures for kix's supply-chain commands (kix sbom, vulns, licenses), on
# top of the fixture package set in default.nix:
#
#   nix-build test/nix/sbom.nix -A app
#
# - app: a program whose closure holds hello, busybox and agpl-tool;
# - hello-patched: hello 2.12.1 with a patch named after CVE-2099-0001 in
#   its derivation, and app-patched, app with it in place of hello;
# - agpl-tool: a package under AGPL-3.0-only, for licence policies that
#   deny it; unfree-blob: one whose licence has no SPDX id.
#
# The CVE ids are made up (CVE-2099-*) so they never meet real advisories;
# internal/sbom/testdata holds advisories that name them.
{
  system ? builtins.currentSystem,
}:
let
  fixtures = import ./default.nix { inherit system; };
  inherit (fixtures) busybox hello;
  inherit (fixtures.lib) mkDerivation;

  # hello with a (pretend) security fix: the patch is an input of the
  # derivation, as nixpkgs' `patches` are.
  hello-patched = mkDerivation {
    pname = "hello";
    version = "2.12.1";
    patches = [ ./sbom/CVE-2099-0001.patch ];
    script = ''
      mkdir -p $out/bin
      cat > $out/bin/hello <<EOF
      #!${busybox}/bin/sh
      echo 'Hello, patched world!'
      EOF
      chmod 555 $out/bin/hello
    '';
    meta = hello.meta;
  };

  agpl-tool = mkDerivation {
    pname = "agpl-tool";
    version = "0.9.0";
    script = ''
      mkdir -p $out/bin
      printf '#!${busybox}/bin/sh\necho agpl\n' > $out/bin/agpl-tool
      chmod 555 $out/bin/agpl-tool
    '';
    meta = {
      description = "A tool under a licence some policies deny";
      homepage = "https://example.org/agpl-tool";
      license = {
        spdxId = "AGPL-3.0-only";
        shortName = "agpl3Only";
        fullName = "GNU Affero General Public License v3.0 only";
        free = true;
      };
    };
  };

  unfree-blob = mkDerivation {
    pname = "unfree-blob";
    version = "1.0";
    script = ''
      mkdir -p $out/share
      echo blob > $out/share/blob
    '';
    meta = {
      description = "Data under a licence without an SPDX id";
      license = {
        shortName = "unfree";
        fullName = "Unfree";
        free = false;
      };
    };
  };

  # Licences given as strings, as older packages and overlays do: one
  # SPDX id in nixpkgs' lower case, one nixpkgs short name.
  legacy-licences = mkDerivation {
    pname = "legacy-licences";
    version = "1.0";
    script = ''
      mkdir -p $out/share
      echo legacy > $out/share/legacy
    '';
    meta.license = [
      "mit"
      "unfree"
    ];
  };

  mkApp =
    name: hello:
    mkDerivation {
      pname = name;
      version = "1.0";
      script = ''
        mkdir -p $out/bin
        cat > $out/bin/${name} <<EOF
        #!${busybox}/bin/sh
        ${hello}/bin/hello
        ${agpl-tool}/bin/agpl-tool
        EOF
        chmod 555 $out/bin/${name}
      '';
      meta = {
        description = "The supply-chain fixture application";
        license = {
          spdxId = "MIT";
          shortName = "mit";
          free = true;
        };
      };
    };
in
{
  inherit
    busybox
    hello
    hello-patched
    agpl-tool
    unfree-blob
    legacy-licences
    ;
  inherit (fixtures) hello-greeting libgreet;
  app = mkApp "kix-app" hello;
  app-patched = mkApp "kix-app-patched" hello-patched;
  # A closure with a licence that has no SPDX id.
  app-unfree = mkDerivation {
    pname = "kix-app-unfree";
    version = "1.0";
    script = ''
      mkdir -p $out/share
      echo ${unfree-blob} > $out/share/uses
    '';
  };
  # Not packages: skipped by `kix sbom -f`.
  lib = fixtures.lib;
  notADerivation = "just a string";
}
