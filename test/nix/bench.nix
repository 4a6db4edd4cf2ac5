# A synthetic closure for benchmarks: `count` paths of about `kib` KiB each
# (half random bytes, half busybox's binary repeated, so it compresses the
# way programs do) and a root that references them all. With the defaults:
# 200 paths, about 215 MiB.
#
#   nix-build test/nix/bench.nix -A closure --max-jobs auto
{
  count ? 200,
  kib ? 1100,
  system ? builtins.currentSystem,
}:
let
  fixtures = import ./default.nix { inherit system; };
  inherit (fixtures) busybox;
  inherit (fixtures.lib) mkDerivation;

  blob =
    i:
    mkDerivation {
      pname = "bench-blob-${toString i}";
      version = "1.0";
      script = ''
        mkdir -p $out/share
        head -c ${toString (kib * 512)} /dev/urandom > $out/share/random.bin
        while :; do cat ${busybox}/bin/busybox; done | head -c ${toString (kib * 512)} > $out/share/program.bin
      '';
    };

  blobs = builtins.genList blob count;
in
{
  closure = mkDerivation {
    pname = "bench-closure";
    version = "1.0";
    script = ''
      mkdir -p $out/bin
      {
        echo '#!${busybox}/bin/sh'
        ${builtins.concatStringsSep "\n" (map (b: "echo 'echo ${b}'") blobs)}
      } > $out/bin/bench-closure
      chmod 555 $out/bin/bench-closure
    '';
  };
}
