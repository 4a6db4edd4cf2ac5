package csi

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"github.com/kix-project/kix/test/fixture"
)

// csi-sanity (csi-test v5.6.0) against the driver, with a real binary
// cache behind it. kix is a node-only plugin: it advertises no controller
// service, so the controller and group controller specs do not apply, and
// "should remove target path" is skipped because it makes its volume
// through the controller's CreateVolume. The node specs that remain check
// NodeGetInfo, NodeGetCapabilities and the argument checks of publish and
// unpublish; TestPublishSharesOneCopy and friends publish for real.
func TestSanity(t *testing.T) {
	hello := fixture.Build(t, "hello")
	bc := fixture.NewBinaryCache(t, "zstd", hello)
	d := startDriver(t, Options{Substituters: []string{bc.URL()}, TrustedKeys: []string{bc.Key.Public}})
	base, err := os.MkdirTemp("", "kix-sanity-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })

	cfg := sanity.NewTestConfig()
	cfg.Address = d.endpoint
	cfg.TargetPath = filepath.Join(base, "target")
	cfg.StagingPath = filepath.Join(base, "staging")
	cfg.TestVolumeParameters = map[string]string{"storePath": hello}

	sanity.GinkgoTest(&cfg)
	gomega.RegisterFailHandler(ginkgo.Fail)
	suite, reporter := ginkgo.GinkgoConfiguration()
	suite.SkipStrings = []string{`\[Controller Server\]`, `\[GroupController`, `should remove target path`}
	reporter.Succinct = !testing.Verbose()
	reporter.NoColor = true
	ginkgo.RunSpecs(t, "kix csi sanity", suite, reporter)
}
