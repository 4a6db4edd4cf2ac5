// Package cache serves a Nix binary cache over HTTP: the protocol Nix
// speaks to substituters such as cache.nixos.org, so any Nix (and kix's own
// nix.BinaryCache) can copy store paths from it, and `nix copy --to
// http://...` can push to it.
//
// # Protocol
//
//	GET  /nix-cache-info            StoreDir: /nix/store, WantMassQuery: 1, Priority: 40
//	GET  /<hash>.narinfo            what is known about /nix/store/<hash>-<name>
//	GET  /nar/<file>                the path's NAR, compressed as its narinfo says
//	PUT  /nar/<file>                upload a NAR file   (folder only, with the upload token)
//	PUT  /<hash>.narinfo            upload its narinfo  (folder only, with the upload token)
//
// HEAD works wherever GET does; Nix uses it to ask whether a NAR is there.
//
// # Two sources
//
// Over a Store (Options.Store, `kix cache --store`), nothing is on disk:
// a narinfo is made from the path's PathInfo and signed with
// Options.SigningKey as it is asked for, and its URL is
//
//	nar/<store hash>-<NAR hash, nixbase32>.nar.zst
//
// so a NAR request names its store path without any state on the server
// (the NAR hash in the name makes the URL immutable: if the path's NAR hash
// were ever different, the request would fail instead of serving other
// bytes). The NAR is serialised from the store and compressed while it is
// sent (Options.Compression: none, xz or zstd), which is why such narinfos
// have no FileHash and FileSize. Nix 2.8 accepts that; it checks the NAR
// hash and size, which are signed.
//
// Over a folder (Options.Dir, `kix cache --dir`) laid out as `nix copy --to
// file://DIR` writes it, files are served as they are: narinfos from
// memory once read, NARs with ranges. If Options.SigningKey is set, a
// narinfo it has not signed is signed as it is served.
//
// # Uploads
//
// Only a folder takes uploads, and only with Options.UploadToken: as a
// bearer token (Authorization: Bearer TOKEN) or as the password of HTTP
// basic authentication, which is what Nix sends from a netrc file:
//
//	machine cache.example.org
//	password TOKEN
//
//	nix copy --option netrc-file ./netrc --to http://cache.example.org /nix/store/...-hello
//
// Nix uploads each path's NAR, then its narinfo. A NAR is written under a
// temporary name and renamed into place only if its SHA-256 is the file
// hash its name says; a narinfo is accepted only if the NAR it points to is
// there and has the narinfo's NAR hash and size (and file hash and size),
// and if every path it references is already in the cache, so the cache
// never advertises a path it cannot serve with its whole closure. Accepted
// narinfos are signed with Options.SigningKey, if set, and renamed into
// place last.
//
// # Worked example
//
// A CI job pushes hello's closure, then a node fetches it:
//
//	kix cache keygen cache.example.org-1          # cache.example.org-1.sec, .pub
//	kix cache --dir /srv/cache --secret-key cache.example.org-1.sec \
//	    --upload-token "$TOKEN" --listen :8080
//	nix copy --option netrc-file netrc --to http://cache:8080 /nix/store/y2zs...-hello-2.12.1
//	    PUT /nar/1z7r...f46.nar.xz        hash checked, renamed into place
//	    PUT /y2zs...996.narinfo           NAR verified, references present, signed
//	nix copy --from http://cache:8080 --option trusted-public-keys "$(cat cache.example.org-1.pub)" ...
//	    GET /nix-cache-info, GET /y2zs...996.narinfo, GET /nar/1z7r...f46.nar.xz
package cache
