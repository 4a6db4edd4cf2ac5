package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	serviceCIDR = "10.0.0.0/24"
	adminUser   = "kix-admin"
)

var serviceIP = net.IPv4(10, 0, 0, 1)

// startControlPlane starts etcd and the API server and waits until the API
// server is ready, then starts the controller manager and the scheduler
// (which the harness does not wait for: they catch up within a second).
func (s *supervisor) startControlPlane(ctx context.Context) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]

	s.progress("starting etcd")
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	etcd, err := s.start("etcd", s.bins.Etcd, []string{
		"--name", "kix",
		"--data-dir", filepath.Join(s.dir, "etcd"),
		"--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:" + strconv.Itoa(peerPort),
		"--initial-advertise-peer-urls", "http://127.0.0.1:" + strconv.Itoa(peerPort),
		"--initial-cluster", "kix=http://127.0.0.1:" + strconv.Itoa(peerPort),
		"--unsafe-no-fsync", // a throwaway cluster: speed over durability
		"--log-level", "warn",
	}, nil)
	if err != nil {
		return err
	}

	pkiDir := filepath.Join(s.dir, "pki")
	p, err := writePKI(pkiDir, serviceIP)
	if err != nil {
		return err
	}
	token, err := randomToken()
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(pkiDir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(token+","+adminUser+",kix-admin-uid,system:masters\n"), 0o600); err != nil {
		return err
	}
	server := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	kubeconfig := filepath.Join(s.dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, p.CACert, token); err != nil {
		return err
	}
	s.info.Kubeconfig = kubeconfig
	s.info.Server = server
	s.info.Token = token
	s.info.CACert = p.CACert

	if err := waitFor(ctx, etcd, 20*time.Second, func() error {
		return httpOK(http.DefaultClient, etcdURL+"/health", "")
	}); err != nil {
		return fmt.Errorf("waiting for etcd: %w", err)
	}

	s.progress("starting kube-apiserver")
	apiserver, err := s.start("kube-apiserver", s.bins.path("kube-apiserver"), []string{
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort),
		"--tls-cert-file", p.ServingCert,
		"--tls-private-key-file", p.ServingKey,
		"--client-ca-file", p.CACert,
		"--token-auth-file", tokenFile,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", p.SAPublicKey,
		"--service-account-signing-key-file", p.SAPrivateKey,
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", serviceCIDR,
		"--allow-privileged",
		"--kubelet-preferred-address-types", "Hostname",
		"--profiling=false",
	}, nil)
	if err != nil {
		return err
	}
	client, err := tlsClient(p.CACert)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, apiserver, 60*time.Second, func() error {
		return httpOK(client, server+"/readyz", token)
	}); err != nil {
		return fmt.Errorf("waiting for kube-apiserver: %w", err)
	}

	s.progress("starting kube-controller-manager and kube-scheduler")
	if _, err := s.start("kube-controller-manager", s.bins.path("kube-controller-manager"), []string{
		"--kubeconfig", kubeconfig,
		"--service-account-private-key-file", p.SAPrivateKey,
		"--root-ca-file", p.CACert,
		"--leader-elect=false",
		"--bind-address", "127.0.0.1",
		"--secure-port", "0",
		"--profiling=false",
	}, nil); err != nil {
		return err
	}
	if _, err := s.start("kube-scheduler", s.bins.path("kube-scheduler"), []string{
		"--kubeconfig", kubeconfig,
		"--leader-elect=false",
		"--bind-address", "127.0.0.1",
		"--secure-port", "0",
		"--profiling=false",
	}, nil); err != nil {
		return err
	}
	return nil
}

func writeKubeconfig(path, server, caFile, token string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kix"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[adminUser] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kix"] = &clientcmdapi.Context{Cluster: "kix", AuthInfo: adminUser, Namespace: "default"}
	cfg.CurrentContext = "kix"
	return clientcmd.WriteToFile(*cfg, path)
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func tlsClient(caFile string) (*http.Client, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}, nil
}

// httpOK GETs url and fails unless the answer is 200.
func httpOK(client *http.Client, url, token string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return nil
}

// freePorts returns n distinct loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor polls check until it succeeds, the process exits, ctx ends or
// timeout passes.
func waitFor(ctx context.Context, p *process, timeout time.Duration, check func() error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = check(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return p.exitError()
		case <-deadline.C:
			return fmt.Errorf("not ready after %s: %v; last log lines of %s:\n%s", timeout, last, p.name, tailFile(p.logPath, 20))
		case <-tick.C:
		}
	}
}

// waitForDefaultServiceAccount waits until the controller manager has
// created the default namespace's ServiceAccount: pods cannot be admitted
// without it.
func (s *supervisor) waitForDefaultServiceAccount(ctx context.Context) error {
	client, err := clientFor(s.info.Kubeconfig)
	if err != nil {
		return err
	}
	s.mu.Lock()
	cm := s.procs["kube-controller-manager"]
	s.mu.Unlock()
	return waitFor(ctx, cm, 60*time.Second, func() error {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}
