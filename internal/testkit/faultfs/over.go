package faultfs

import (
	"errors"
	"fmt"
	"os"
)

// BackingSuffix is what MountOver appends to a directory's name for its
// backing directory.
const BackingSuffix = ".backing"

// MountOver puts dir on a faultfs: dir (made if missing) is renamed to
// dir+BackingSuffix, which becomes the backing directory, and a faultfs of
// it is mounted at a new empty dir. Nothing may have dir open. A test
// calls it before it starts the process that uses dir.
func MountOver(dir string) (*FS, error) {
	backing := dir + BackingSuffix
	if err := Available(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(backing); err == nil {
		return nil, fmt.Errorf("faultfs: %s exists already: is %s mounted over already?", backing, dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("faultfs: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("faultfs: %w", err)
	}
	if err := os.Rename(dir, backing); err != nil {
		return nil, fmt.Errorf("faultfs: move %s aside: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("faultfs: mountpoint: %w", err)
	}
	return Mount(backing, dir)
}

// Remount mounts a new faultfs of f's backing directory at f's mountpoint,
// as a machine does when it comes back after a power loss: call it after
// Crash (or Unmount). The new FS starts without faults (no fsync delay, not
// full) and with no dirty data.
func (f *FS) Remount() (*FS, error) {
	f.mu.Lock()
	crashed := f.crashed
	f.mu.Unlock()
	if !crashed {
		return nil, fmt.Errorf("faultfs: remount %s: still mounted; Crash or Unmount it first", f.Mountpoint)
	}
	return Mount(f.Backing, f.Mountpoint)
}
