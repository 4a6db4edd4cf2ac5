package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// podNetwork is the CNI bridge network of one harness node. Several harnesses
// may run on one machine at once (go test runs packages in parallel), so each
// leases its own /24 and bridge name through a file under os.TempDir().
type podNetwork struct {
	Bridge  string
	Subnet  *net.IPNet
	Gateway net.IP
}

// leaseNetwork picks a free 10.x.y.0/24 (x in 200..249) that no interface on
// this machine uses and no other harness holds, records it in dir, and
// returns it. sweep releases it.
func leaseNetwork(dir string) (*podNetwork, error) {
	leases := filepath.Join(os.TempDir(), leaseFolder)
	if err := os.MkdirAll(leases, 0o755); err != nil {
		return nil, err
	}
	used, err := hostNetworks()
	if err != nil {
		return nil, err
	}
	const count = 50 * 256
	start := rand.IntN(count)
	for i := 0; i < count; i++ {
		n := (start + i) % count
		x, y := 200+n/256, n%256
		subnet := &net.IPNet{IP: net.IPv4(10, byte(x), byte(y), 0).To4(), Mask: net.CIDRMask(24, 32)}
		if overlapsAny(subnet, used) {
			continue
		}
		name := fmt.Sprintf("kix%d-%d", x, y)
		lease := filepath.Join(leases, name)
		f, err := os.OpenFile(lease, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		_, werr := f.WriteString(dir + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.WriteFile(filepath.Join(dir, "lease"), []byte(lease+"\n"), 0o644)
		}
		if werr == nil {
			werr = os.WriteFile(filepath.Join(dir, "bridge"), []byte(name+"\n"), 0o644)
		}
		if werr != nil {
			os.Remove(lease)
			return nil, werr
		}
		return &podNetwork{
			Bridge:  name,
			Subnet:  subnet,
			Gateway: net.IPv4(10, byte(x), byte(y), 1).To4(),
		}, nil
	}
	return nil, errors.New("no free pod subnet in 10.200.0.0/16-10.249.255.0/24")
}

// releaseLease gives back the network lease recorded in dir, if this harness
// still holds it.
func releaseLease(dir string) {
	lease, err := os.ReadFile(filepath.Join(dir, "lease"))
	if err != nil {
		return
	}
	path := strings.TrimSpace(string(lease))
	owner, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(owner)) == dir {
		os.Remove(path)
	}
}

func hostNetworks() ([]*net.IPNet, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var nets []*net.IPNet
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			nets = append(nets, n)
		}
	}
	return nets, nil
}

func overlapsAny(n *net.IPNet, others []*net.IPNet) bool {
	for _, o := range others {
		if n.Contains(o.IP) || o.Contains(n.IP) {
			return true
		}
	}
	return false
}
