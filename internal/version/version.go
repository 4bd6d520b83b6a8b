// Package version holds keel's version and on-disk data format version.
package version

import "runtime/debug"

// Version is set at build time with -ldflags "-X keel/internal/version.Version=v1.2.3".
var Version = "dev"

// DataFormat is the version of the on-disk layout of a node's data directory.
// A node refuses to start on a directory written with another format.
const DataFormat = 1

// String returns the version with the VCS revision when known.
func String() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}
