// Package eval turns what a user points kix at into Kubernetes objects:
//
//   - a Nix file (-f app.nix, optionally -A attr, --arg, --argstr), or a
//     flake output (-f ./repo#manifests), evaluated with the nix command;
//   - a YAML or JSON file of manifests, or a folder of them.
//
// A Nix value may have any of the shapes the Nix-and-Kubernetes tools
// produce:
//
//	[ { apiVersion = "v1"; kind = "Service"; ... } ... ]     a list of objects
//	{ apiVersion = "v1"; kind = "List"; items = [ ... ]; }    a List (kubenix's result)
//	{ shop.Deployment.web.spec = { ... }; }                   namespace.Kind.name (easykubenix);
//	                                                          namespace "none" for cluster-scoped
//	a derivation, or a store path in any of these places      its output: a manifests file or folder
//
// and attrsets marked `_namedlist = true` become lists of their values,
// each named after its key (easykubenix's convenience; kix's Nix library
// writes it as kix.namedList).
//
// Every store path the objects refer to — an image named
// nix.internal/<hash>-<name>, a command naming a program, a CSI volume
// naming a closure — is known from the value's string context and is
// realised (built or substituted) before the objects are returned, so
// nothing is applied that names a path that does not exist.
package eval
