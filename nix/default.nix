# kix's Nix library.
#
#   kix = import ./path/to/kix/nix { inherit pkgs; };
#
# It uses nothing from pkgs but `writeText`, so any package set works,
# including a small one made without nixpkgs.
{ pkgs }:
import ./image.nix { inherit (pkgs) writeText; }
