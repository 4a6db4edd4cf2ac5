# kix's test fixtures: a small package set built from a static busybox,
# without nixpkgs, so every test can build it offline in seconds with any Nix.
#
#   nix-build test/nix -A hello
#
# Packages follow nixpkgs' conventions (pname and version in the derivation,
# a meta attrset with licence and homepage) so SBOM code meets the same
# shapes it meets in the wild.
{
  system ? builtins.currentSystem,
  # A statically linked busybox (Debian: busybox-static).
  busyboxBinary ? /usr/bin/busybox,
}:
let
  # The busybox binary alone, in a folder of its own, so the builder can be
  # called ".../busybox" (busybox picks its applet from argv[0]).
  bootstrap = builtins.path {
    name = "busybox-static-bootstrap";
    path = dirOf busyboxBinary;
    filter = path: _type: path == toString busyboxBinary;
  };

  # mkDerivation { pname, version, script, ... } -> a derivation whose
  # builder runs `script` with busybox's sh and its applets on PATH.
  mkDerivation =
    {
      pname,
      version,
      script,
      meta ? { },
      ...
    }@args:
    let
      drv = derivation (
        removeAttrs args [
          "script"
          "meta"
        ]
        // {
          name = "${pname}-${version}";
          inherit system;
          builder = "${bootstrap}/busybox";
          args = [
            "sh"
            "-ec"
            script
          ];
          PATH = "${busybox}/bin";
        }
      );
    in
    drv // { inherit meta; };

  # The minimal package set kix's Nix library needs.
  pkgs = {
    inherit system;
    writeText =
      name: text:
      derivation {
        inherit name system text;
        builder = "${bootstrap}/busybox";
        args = [
          "sh"
          "-ec"
          ''${bootstrap}/busybox cp "$textPath" "$out"''
        ];
        passAsFile = [ "text" ];
      };
  };

  kix = import ../../nix { inherit pkgs; };

  licenses = {
    gpl2Only = {
      spdxId = "GPL-2.0-only";
      shortName = "gpl2Only";
      fullName = "GNU General Public License v2.0 only";
      free = true;
    };
    gpl3Plus = {
      spdxId = "GPL-3.0-or-later";
      shortName = "gpl3Plus";
      fullName = "GNU General Public License v3.0 or later";
      free = true;
    };
    mit = {
      spdxId = "MIT";
      shortName = "mit";
      fullName = "MIT License";
      free = true;
    };
    asl20 = {
      spdxId = "Apache-2.0";
      shortName = "asl20";
      fullName = "Apache License 2.0";
      free = true;
    };
    cc0 = {
      spdxId = "CC0-1.0";
      shortName = "cc0";
      fullName = "Creative Commons Zero v1.0 Universal";
      free = true;
    };
  };

  busybox =
    let
      drv = derivation {
        name = "busybox-1.35.0";
        pname = "busybox";
        version = "1.35.0";
        inherit system;
        builder = "${bootstrap}/busybox";
        args = [
          "sh"
          "-ec"
          ''
            bb=${bootstrap}/busybox
            $bb mkdir -p $out/bin
            $bb cp $bb $out/bin/busybox
            $out/bin/busybox --install -s $out/bin
          ''
        ];
      };
    in
    drv
    // {
      meta = {
        description = "Tiny versions of common UNIX utilities in a single small executable";
        homepage = "https://busybox.net";
        license = licenses.gpl2Only;
        identifiers.cpe = "cpe:2.3:a:busybox:busybox:1.35.0:*:*:*:*:*:*:*";
      };
    };

  # hello's data: the greeting it prints.
  hello-greeting = mkDerivation {
    pname = "hello-greeting";
    version = "1.0";
    script = ''
      mkdir -p $out/share/hello
      echo 'Hello, world!' > $out/share/hello/greeting.txt
    '';
    meta = {
      description = "The greeting hello prints";
      license = licenses.cc0;
    };
  };

  # hello prints its greeting. With --linger it then waits until stopped, so
  # it can run as a long-lived container.
  hello = mkDerivation {
    pname = "hello";
    version = "2.12.1";
    script = ''
      mkdir -p $out/bin
      cat > $out/bin/hello <<EOF
      #!${busybox}/bin/sh
      ${busybox}/bin/cat ${hello-greeting}/share/hello/greeting.txt
      if [ "\$1" = --linger ]; then
        trap 'exit 0' TERM INT
        ${busybox}/bin/sleep 2147483647 &
        wait
      fi
      EOF
      chmod 555 $out/bin/hello
    '';
    meta = {
      description = "A program that produces a familiar, friendly greeting";
      homepage = "https://www.gnu.org/software/hello/";
      license = licenses.gpl3Plus;
      identifiers.cpe = "cpe:2.3:a:gnu:hello:2.12.1:*:*:*:*:*:*:*";
      mainProgram = "hello";
    };
  };

  # A library with two outputs: "out" holds the library, "dev" its header,
  # which refers to "out".
  libgreet = mkDerivation {
    pname = "libgreet";
    version = "0.3.0";
    outputs = [
      "out"
      "dev"
    ];
    script = ''
      mkdir -p $out/lib $dev/include
      echo 'greet library' > $out/lib/libgreet.txt
      echo '/* libgreet from ${placeholder "out"} */' > $dev/include/greet.h
    '';
    meta = {
      description = "A greeting library with a separate development output";
      homepage = "https://example.org/libgreet";
      license = licenses.mit;
    };
  };

  # The page the web server serves.
  site = mkDerivation {
    pname = "kix-site";
    version = "1.0";
    script = ''
      mkdir -p $out
      echo '<h1>Hello from kix</h1>' > $out/index.html
    '';
    meta = {
      description = "A one-page site";
      license = licenses.cc0;
    };
  };

  # webserver serves the site on $PORT (default 8080) with busybox httpd.
  webserver = mkDerivation {
    pname = "webserver";
    version = "1.0";
    script = ''
      mkdir -p $out/bin
      cat > $out/bin/webserver <<EOF
      #!${busybox}/bin/sh
      exec ${busybox}/bin/httpd -f -v -p "\''${PORT:-8080}" -h ${site}
      EOF
      chmod 555 $out/bin/webserver
    '';
    meta = {
      description = "A static web server for the fixture site";
      license = licenses.asl20;
      mainProgram = "webserver";
    };
  };

  helloImageSpec = kix.imageSpec {
    name = "hello";
    systems.${system} = {
      roots = [ hello ];
      entrypoint = [ "${hello}/bin/hello" ];
      cmd = [ "--linger" ];
      env = {
        GREETING_FROM = "kix";
      };
      workingDir = "/";
      user = "0:0";
      labels."org.opencontainers.image.title" = "hello";
    };
  };

  # An image index: one image per system. Without a cross toolchain the
  # same roots stand in for the second system; only the index is tested.
  helloMultiSystemImageSpec = kix.imageSpec {
    name = "hello-multi";
    systems = {
      x86_64-linux.roots = [ hello ];
      aarch64-linux.roots = [ hello ];
    };
  };

  # Kubernetes objects naming the images above by store path.
  manifests = pkgs.writeText "manifests.json" (
    builtins.toJSON {
      apiVersion = "v1";
      kind = "List";
      items = [
        (deployment {
          name = "hello";
          image = kix.imageRef hello;
          args = [ "--linger" ];
        })
        (deployment {
          name = "web";
          image = kix.imageRef webserver;
          args = [ ];
          port = 8080;
        })
        {
          apiVersion = "v1";
          kind = "Service";
          metadata.name = "web";
          spec = {
            selector.app = "web";
            ports = [
              {
                port = 80;
                targetPort = 8080;
              }
            ];
          };
        }
      ];
    }
  );

  deployment =
    {
      name,
      image,
      args,
      port ? null,
    }:
    {
      apiVersion = "apps/v1";
      kind = "Deployment";
      metadata.name = name;
      spec = {
        replicas = 1;
        selector.matchLabels.app = name;
        template = {
          metadata.labels.app = name;
          spec.containers = [
            (
              {
                inherit name image args;
              }
              // (if port == null then { } else { ports = [ { containerPort = port; } ]; })
            )
          ];
        };
      };
    };
in
{
  inherit
    busybox
    hello-greeting
    hello
    libgreet
    site
    webserver
    helloImageSpec
    helloMultiSystemImageSpec
    manifests
    ;
  # Helpers for other fixture files (bench.nix); not packages.
  lib = {
    inherit mkDerivation kix pkgs;
  };
}
