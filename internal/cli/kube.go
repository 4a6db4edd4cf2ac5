package cli

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"golang.org/x/term"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// kubeOptions are kubectl's connection flags (--kubeconfig, --context,
// -n/--namespace, --server, --token, ...), read the way kubectl reads them.
type kubeOptions struct {
	flags *genericclioptions.ConfigFlags
}

func (o *kubeOptions) addKubeFlags(fs *pflag.FlagSet) {
	o.flags = genericclioptions.NewConfigFlags(true)
	// kix caches discovery in memory; --cache-dir is kix's image cache.
	o.flags.CacheDir = nil
	o.flags.AddFlags(fs)
}

// restConfig returns the client configuration, with API warnings written
// once each to w.
func (o *kubeOptions) restConfig(w io.Writer) (*rest.Config, error) {
	cfg, err := o.flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg.WarningHandler = rest.NewWarningWriter(w, rest.WarningWriterOptions{Deduplicate: true, Color: isTerminal(w)})
	return cfg, nil
}

// namespace is -n, or the kubeconfig context's namespace, or "default";
// explicit says it is -n.
func (o *kubeOptions) namespace() (ns string, explicit bool, err error) {
	return o.flags.ToRawKubeConfigLoader().Namespace()
}

// quietClientGo silences client-go's own log lines (a discovery failure
// logged once per retry, say) below -v 2: a one-shot command's error says
// what failed, once.
func quietClientGo() {
	if !slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		klog.SetLogger(logr.Discard())
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
