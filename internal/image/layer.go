package image

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/nix-community/go-nix/pkg/nar"

	"github.com/kix-project/kix/internal/nix"
)

// storeMtime is the modification time Nix gives every store file.
var storeMtime = time.Unix(1, 0)

// writeLayerTar writes the tar stream of a layer holding paths (sorted)
// to w: nix/, nix/store/, then each path's files in NAR order.
func writeLayerTar(ctx context.Context, w io.Writer, store nix.Store, paths []string) error {
	tw := tar.NewWriter(w)
	for _, dir := range []string{"nix/", "nix/store/"} {
		if err := tw.WriteHeader(dirHeader(dir)); err != nil {
			return err
		}
	}
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := addStorePath(ctx, tw, store, p); err != nil {
			return fmt.Errorf("adding %s to a layer: %w", p, err)
		}
	}
	return tw.Close()
}

func dirHeader(name string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o555, ModTime: storeMtime}
}

func addStorePath(ctx context.Context, tw *tar.Writer, store nix.Store, path string) error {
	files, err := nix.Files(ctx, store, path)
	if err != nil {
		return err
	}
	defer files.Close()
	base := "nix/store/" + nix.BaseName(path)
	for {
		h, err := files.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := base
		if h.Path != "/" {
			name += h.Path
		}
		hdr := &tar.Header{Name: name, ModTime: storeMtime}
		switch h.Type {
		case nar.TypeDirectory:
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", 0o555
		case nar.TypeSymlink:
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, h.LinkTarget, 0o777
		case nar.TypeRegular:
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, h.Size, 0o444
			if h.Executable {
				hdr.Mode = 0o555
			}
		default:
			return fmt.Errorf("%s: unknown NAR node type %q", name, h.Type)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if h.Type == nar.TypeRegular {
			if _, err := io.CopyN(tw, files, h.Size); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
}
