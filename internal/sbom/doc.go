// Package sbom describes what a Nix closure holds and checks it: software
// bills of materials (CycloneDX 1.6 and SPDX 2.3 JSON), vulnerabilities
// from an offline database, and a licence policy. Because the closure is
// known exactly, nothing is guessed from file contents as generic scanners
// do: every store path is one component, and the reference graph is the
// dependency graph.
//
// # The model
//
// A Document is a list of Components, one per store path, sorted by path.
// FromClosure makes one from the runtime closure of some roots (the
// PathInfos nix.Closure returns); FromDerivations from a derivation graph
// (nix.DerivationGraph), for what building the roots used: the outputs of
// the roots, the outputs of input derivations that are used, and every
// input source (source trees, patches, the builder).
//
// A component's name and version come from its store path alone at first.
// Nix's own rule (builtins.parseDrvName) splits them: the version starts
// after the first dash that is not followed by a letter. The deriver's name
// tells the output apart: a path named like its deriver is output "out";
// one named "<deriver name>-dev" is output "dev". Then Enrich adds, in
// this order, what other sources say (kix sbom, vulns and licenses and the
// registry's SBOM referrers all go through it):
//
//   - each deriver (.drv), read from the local store, gives pname, version
//     and patches from its environment;
//   - a Nix expression's packages (nix.EvalPackages) give pname, version,
//     licences, homepage, description and CPE, over what the derivation
//     said.
//
// For example, the runtime closure of the fixture "app" in test/nix/sbom.nix:
//
//	/nix/store/bs05…-kix-app-1.0          deriver …-kix-app-1.0.drv
//	├── /nix/store/y2zs…-hello-2.12.1     deriver …-hello-2.12.1.drv
//	│   ├── /nix/store/043v…-hello-greeting-1.0
//	│   └── /nix/store/6w87…-busybox-1.35.0
//	├── /nix/store/i686…-agpl-tool-0.9.0
//	└── /nix/store/6w87…-busybox-1.35.0
//
// gives five components. hello's is
//
//	name hello, version 2.12.1, output out
//	purl pkg:nix/hello@2.12.1?outputhash=y2zsg6rkmgjs0pqm8l06pr8kfdws6996
//	NAR hash (SHA-256, hex), the store path, the deriver
//	licence GPL-3.0-or-later, homepage, description and CPE from meta
//	depends on busybox and hello-greeting (its references, less itself)
//
// # Encodings
//
// CycloneDX (EncodeCycloneDX, with github.com/CycloneDX/cyclonedx-go): each
// component has bom-ref = its store path, a purl, a SHA-256 hash (the NAR
// hash), a licence expression, a website reference, the CPE, the patches
// as pedigree (a patch named after a CVE resolves it), and the properties
// nix:store_path, nix:output, nix:deriver and nix:nar_size. The metadata
// component (bom-ref "kix:subject") stands for the whole document and
// depends on the roots; the dependencies section is the reference graph.
//
// SPDX (EncodeSPDX, with github.com/spdx/tools-golang): each component is a
// package whose packageFileName is the store path, with a SHA256 checksum
// (the NAR hash), licenseDeclared, homepage, and purl and cpe23Type
// external references; the document DESCRIBES the roots, and packages
// DEPENDS_ON what they reference. Licences without an SPDX id become
// LicenseRef-… ids, declared in hasExtractedLicensingInfos.
//
// Both are deterministic, so two runs over the same closure diff clean:
// components and edges are sorted, there is no timestamp unless
// Document.Timestamp is set (SPDX requires a creation time: it is then the
// Unix epoch), and the serial number (CycloneDX) and document namespace
// (SPDX) hold a UUID derived from a SHA-256 of the document's content,
// unless RandomSerial asks for a random one.
//
// # Vulnerabilities
//
// LoadDB reads an offline database: OSV records (one per .json file, or
// many in a .zip as osv.dev exports them) and NVD CVE JSON 2.0 feeds
// (nvdcve-2.0-*.json, optionally .gz). Scan matches each component
//
//   - against OSV records by package name (in any ecosystem) and version,
//     listed or inside a SEMVER or ECOSYSTEM range;
//   - against NVD CVEs by CPE, as vulnix does: the component's CPE from
//     meta, or cpe:2.3:a:*:<name>:<version>:… made up from its name and
//     version, against every vulnerable criterion (vendor "*" matches any
//     vendor), with the versionStart/End bounds.
//
// Versions compare as Nix's builtins.compareVersions does. Severity comes
// from the CVSS base score (NVD: the newest CVSS version given; OSV: the
// highest of its CVSS v3 and v4 vectors, scored by go-cvss), rated
// none/low/medium/high/critical, or "unknown" without one. Records of one
// vulnerability under several ids (an OSV record aliasing a CVE) make one
// finding under its CVE id. A finding is suppressed, not reported, when a
// patch of the component's derivation is named after its CVE (as vulnix
// and sbomnix read "CVE-2099-0001.patch"), or when a Whitelist entry
// covers it until its expiry date. WriteSARIF writes a report as SARIF
// 2.1.0.
//
// # Licences
//
// A Policy (LoadPolicy) denies licence patterns, optionally allows only
// some, and says whether components without a licence pass; Check names
// each violating component and the rule it breaks.
package sbom
