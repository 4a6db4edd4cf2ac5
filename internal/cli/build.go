package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kix-project/kix/internal/deploy"
)

// BuildOptions are the flags of `kix build`.
type BuildOptions struct {
	IO IOStreams
	evalOptions
	imageRefOptions
	Output string
}

// NewCmdBuild builds `kix build`.
func NewCmdBuild(streams IOStreams) *cobra.Command {
	opts := &BuildOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "build -f FILE [-A ATTR]",
		Short: "Evaluate a Nix expression (or manifests) and print the Kubernetes objects, without touching a cluster",
		Long: `Evaluate what -f names, build every store path the objects refer to (images,
programs, data), and print the objects: YAML documents by default, or a JSON
List with -o json, ready for kubectl apply -f -: Namespaces first, then CRDs,
admission webhooks last.

-f takes a Nix file (a function is called with --arg/--argstr, as nix-build
does), a flake output (PATH#attr), or a YAML/JSON file or folder. Nix values
may be a list of objects, a List, or namespace.Kind.name attributes (see kix's
Nix library).`,
		Example: `  kix build -f app.nix
  kix build -f . -A manifests --argstr env prod -o json
  kix build -f app.nix --registry registry.example.org --push`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return buildRun(cmd.Context(), opts)
		},
	}
	opts.addEvalFlags(cmd.Flags())
	opts.addImageRefFlags(cmd.Flags())
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

func buildRun(ctx context.Context, opts *BuildOptions) error {
	format, err := parseOutputFormat(opts.Output)
	if err != nil {
		return err
	}
	if format == outputText {
		format = outputYAML
	}
	if err := checkInput(&opts.evalOptions, &opts.imageRefOptions); err != nil {
		return err
	}
	res, err := evaluatePublished(ctx, &opts.evalOptions, &opts.imageRefOptions, opts.IO)
	if err != nil {
		return err
	}
	return writeObjects(opts.IO, format, deploy.InApplyOrder(res.Objects))
}

func writeObjects(streams IOStreams, format outputFormat, objs []*unstructured.Unstructured) error {
	if format == outputJSON {
		items := make([]any, len(objs))
		for i, o := range objs {
			items[i] = o.Object
		}
		return writeStructured(streams.Out, outputJSON, map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	}
	for i, o := range objs {
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(streams.Out, "---")
		}
		if _, err := streams.Out.Write(data); err != nil {
			return err
		}
	}
	return nil
}
