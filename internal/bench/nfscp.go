package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// The sequential load of `keel bench nfs`: libnfs' nfs-cp copying a file of
// random bytes in, then out, and the copy compared with the original.

// nfsURL is the libnfs URL of file name in the export /data, with NFS and
// MOUNT at the given ports (no portmapper needed).
func nfsURL(host string, nfsPort, mountPort int, name string) string {
	return fmt.Sprintf("nfs://%s%s/%s?nfsport=%d&mountport=%d", host, exportPath, name, nfsPort, mountPort)
}

// cpRun is one nfs-cp.
type cpRun struct {
	took time.Duration
	cpu  time.Duration // the nfs-cp process's user + system time
}

// cpTimeout bounds an nfs-cp of size bytes: 2 minutes plus 1 s per MiB.
func cpTimeout(size uint64) time.Duration {
	return 2*time.Minute + time.Duration(size>>20)*time.Second
}

// runNFSCp runs `nfs-cp src dst` once, bounded by cpTimeout(size).
func runNFSCp(ctx context.Context, src, dst string, size uint64) (cpRun, error) {
	ctx, cancel := context.WithTimeout(ctx, cpTimeout(size))
	defer cancel()
	cmd := exec.CommandContext(ctx, "nfs-cp", src, dst)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err := cmd.Run()
	r := cpRun{took: time.Since(start)}
	if cmd.ProcessState != nil {
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && err != nil {
		return r, fmt.Errorf("bench: nfs-cp %s %s: no end within %s: %s", src, dst, cpTimeout(size), strings.TrimSpace(out.String()))
	}
	if ctx.Err() != nil && err != nil {
		return r, ctx.Err()
	}
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return r, errNoNFSCp
		}
		return r, fmt.Errorf("bench: nfs-cp %s %s: %v: %s", src, dst, err, strings.TrimSpace(out.String()))
	}
	return r, nil
}

// writeRandomFile writes size random bytes to a new file at path.
func writeRandomFile(path string, size uint64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	buf := make([]byte, 1<<20)
	for done := uint64(0); done < size; {
		n := min(uint64(len(buf)), size-done)
		if _, err := rand.Read(buf[:n]); err != nil {
			f.Close()
			return fmt.Errorf("bench: %w", err)
		}
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return fmt.Errorf("bench: write %s: %w", path, err)
		}
		done += n
	}
	return f.Close()
}

// sameFiles compares two files byte for byte and says where they first
// differ.
func sameFiles(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			i := 0
			for i < min(na, nb) && ba[i] == bb[i] {
				i++
			}
			return fmt.Errorf("bench: %s and %s differ at byte %d", a, b, off+int64(i))
		}
		off += int64(na)
		aEnd := ea == io.EOF || ea == io.ErrUnexpectedEOF
		bEnd := eb == io.EOF || eb == io.ErrUnexpectedEOF
		switch {
		case ea != nil && !aEnd:
			return fmt.Errorf("bench: read %s: %w", a, ea)
		case eb != nil && !bEnd:
			return fmt.Errorf("bench: read %s: %w", b, eb)
		case aEnd || bEnd:
			return nil // equal chunks, both short: both ended
		}
	}
}
