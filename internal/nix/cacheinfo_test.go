package nix

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCacheInfo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *CacheInfo
		wantErr string
	}{
		{name: "as kix cache writes it", in: "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n",
			want: &CacheInfo{StoreDir: "/nix/store", WantMassQuery: true, Priority: 40}},
		{name: "as nix copy writes it", in: "StoreDir: /nix/store\n", want: &CacheInfo{StoreDir: "/nix/store"}},
		{name: "spaces and CRLF", in: "StoreDir:/gnu/store \r\nWantMassQuery: 0\r\n", want: &CacheInfo{StoreDir: "/gnu/store"}},
		{name: "unknown keys and other lines", in: "<html>\nFoo: bar\nStoreDir: /nix/store\n", want: &CacheInfo{StoreDir: "/nix/store"}},
		{name: "no StoreDir", in: "<html>hello</html>\n", want: &CacheInfo{}},
		{name: "StoreDir twice", in: "StoreDir: /nix/store\nStoreDir: /nix/store\n", want: &CacheInfo{StoreDir: "/nix/store"}},
		{name: "two StoreDirs", in: "StoreDir: /nix/store\nStoreDir: /gnu/store\n", wantErr: "two StoreDirs"},
		{name: "bad Priority", in: "StoreDir: /nix/store\nPriority: high\n", wantErr: `Priority "high"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCacheInfo(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCacheInfoRoundTrips(t *testing.T) {
	for _, ci := range []CacheInfo{
		{StoreDir: StoreDir, WantMassQuery: true, Priority: 40},
		{StoreDir: StoreDir},
		{StoreDir: StoreDir, Priority: -1},
	} {
		got, err := ParseCacheInfo(strings.NewReader(ci.String()))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ci, *got); diff != "" {
			t.Errorf("%q read back (-want +got):\n%s", ci.String(), diff)
		}
	}
}

// The nix-cache-info that nix copy writes to a folder reads as Nix's store.
func TestParseCacheInfoFromNix(t *testing.T) {
	hello, _, _ := helloClosure(t)
	tc := newTestCache(t, "none", hello)
	f, err := os.Open(filepath.Join(tc.Dir, "nix-cache-info"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseCacheInfo(f)
	if err != nil || got.StoreDir != StoreDir {
		t.Errorf("ParseCacheInfo = %+v, %v; want StoreDir %s", got, err, StoreDir)
	}
}
