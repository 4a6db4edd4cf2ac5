package main

import (
	"context"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
)

// pullConcurrency is how many layers a client downloads at once
// (containerd's default max_concurrent_downloads).
const pullConcurrency = 3

// pull fetches an image's manifest, config and every layer, checking each
// blob's digest as clients do, and returns the bytes transferred.
func pull(ctx context.Context, ref string) (int64, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return 0, err
	}
	img, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return 0, err
	}
	sizes := make([]int64, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pullConcurrency)
	for i, l := range layers {
		g.Go(func() error {
			if gctx.Err() != nil {
				return gctx.Err()
			}
			rc, err := l.Compressed() // verifies the digest as it reads
			if err != nil {
				return err
			}
			defer rc.Close()
			sizes[i], err = io.Copy(io.Discard, rc)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	var total int64
	for _, s := range sizes {
		total += s
	}
	return total, nil
}
