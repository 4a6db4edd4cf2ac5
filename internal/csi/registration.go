package csi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// registration answers the kubelet's plugin watcher, which finds
// <kubelet dir>/plugins_registry/<driver>-reg.sock, asks GetInfo for the
// plugin's type, name and CSI endpoint, and reports whether it registered
// it. This is what the node-driver-registrar sidecar does elsewhere.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	d        *Driver
	endpoint string
	sock     string
	srv      *grpc.Server
}

// startRegistration serves the registration socket for the CSI endpoint at
// sock (a path the kubelet can reach).
func (d *Driver) startRegistration(kubeletDir, sock string) (*registration, error) {
	abs, err := filepath.Abs(sock)
	if err != nil {
		return nil, err
	}
	r := &registration{
		d:        d,
		endpoint: abs,
		sock:     filepath.Join(kubeletDir, "plugins_registry", DriverName+"-reg.sock"),
		srv:      grpc.NewServer(),
	}
	ln, err := listenUnix(r.sock)
	if err != nil {
		return nil, fmt.Errorf("kubelet registration socket: %w", err)
	}
	registerapi.RegisterRegistrationServer(r.srv, r)
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              DriverName,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if st.PluginRegistered {
		r.d.log.Info("registered with the kubelet", "socket", r.sock)
	} else {
		r.d.log.Error("the kubelet refused the plugin", "socket", r.sock, "err", st.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// stop removes the socket, so the kubelet deregisters the plugin.
func (r *registration) stop() {
	r.srv.Stop()
	os.Remove(r.sock)
}
