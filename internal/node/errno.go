package node

import (
	"strconv"
	"syscall"
)

var errnoNames = map[syscall.Errno]string{
	syscall.ENOENT: "ENOENT", syscall.EEXIST: "EEXIST", syscall.ENOTDIR: "ENOTDIR", syscall.EISDIR: "EISDIR",
	syscall.ENOTEMPTY: "ENOTEMPTY", syscall.ENOSPC: "ENOSPC", syscall.ENAMETOOLONG: "ENAMETOOLONG",
	syscall.EINVAL: "EINVAL", syscall.EACCES: "EACCES", syscall.EPERM: "EPERM", syscall.ESTALE: "ESTALE",
	syscall.EXDEV: "EXDEV", syscall.ELOOP: "ELOOP", syscall.EFBIG: "EFBIG", syscall.EBUSY: "EBUSY",
}

func errnoName(e syscall.Errno) string {
	if s, ok := errnoNames[e]; ok {
		return s
	}
	return "E" + strconv.Itoa(int(e))
}

// errnoText says what a filesystem error means for a user of the admin API.
func errnoText(e syscall.Errno) string {
	switch e {
	case syscall.ENOSPC:
		return "no space left in the volume (ENOSPC): grow it with `keel volume resize`, or delete data"
	case syscall.ENOENT:
		return "no such file, directory or volume (ENOENT)"
	case syscall.ENOTEMPTY:
		return "not empty (ENOTEMPTY): remove its contents first, or use --force where offered"
	}
	return e.Error() + " (" + errnoName(e) + ")"
}
