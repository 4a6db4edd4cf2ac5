package nix

import (
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// What the local store learns from /nix/store itself: which entries it
// holds, and which incarnation of a path its metadata describes.

// storeListing is the store folder's entries, sorted, as of its
// modification time: every path added or deleted changes it.
type storeListing struct {
	mu     sync.Mutex
	mtime  time.Time
	readAt time.Time
	names  []string
}

// listingSettled is how long after the folder's modification time a
// listing must have been read to be kept: file times come from a clock
// that advances a tick (milliseconds) at a time, and a path added within
// the tick of the listing's read leaves the time as it was.
const listingSettled = time.Second

// withHash returns the store folder's entries named <hash>-*, reading the
// folder again only if it changed since it was last read.
func (l *storeListing) withHash(hash string) ([]string, error) {
	fi, err := os.Stat(StoreDir)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.names == nil || !fi.ModTime().Equal(l.mtime) || l.readAt.Sub(l.mtime) < listingSettled {
		readAt := time.Now()
		f, err := os.Open(StoreDir)
		if err != nil {
			return nil, err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, err
		}
		slices.Sort(names)
		l.names, l.mtime, l.readAt = names, fi.ModTime(), readAt
	}
	prefix := hash + "-"
	var out []string
	for i, _ := slices.BinarySearch(l.names, prefix); i < len(l.names) && strings.HasPrefix(l.names[i], prefix); i++ {
		out = append(out, StoreDir+"/"+l.names[i])
	}
	return out, nil
}

// cachedInfo is a path's metadata as queried, and the incarnation of the
// path it describes. A valid path's metadata never changes, but a path
// deleted and built again (a garbage collection, then a build that is not
// reproducible) may hold other contents.
type cachedInfo struct {
	info *PathInfo
	id   PathID
}

// PathID identifies one incarnation of a store path: made again, a path
// has another inode or change time. The zero PathID is a path that could
// not be looked at.
type PathID struct {
	dev, ino uint64
	ctime    unix.Timespec
}

// StatPathID returns the incarnation of path now; the zero PathID if it
// cannot be looked at.
func StatPathID(path string) PathID {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return PathID{}
	}
	return PathID{uint64(st.Dev), st.Ino, st.Ctim}
}
