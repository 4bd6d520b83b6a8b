package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// BuildKeel runs go build for keel/cmd/keel into dir and returns the path of
// the binary. Other packages of the module may be mid-edit, so a failed
// build is retried twice, 20 s apart.
func BuildKeel(dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, "keel")
	var last []byte
	for attempt := 1; attempt <= 3; attempt++ {
		b, err := exec.Command(goTool, "build", "-o", out, "keel/cmd/keel").CombinedOutput()
		if err == nil {
			return out, nil
		}
		last = b
		if attempt < 3 {
			fmt.Fprintf(os.Stderr, "testkit: building keel failed (attempt %d), retrying in 20s:\n%s", attempt, b)
			time.Sleep(20 * time.Second)
		}
	}
	return "", fmt.Errorf("testkit: go build keel/cmd/keel failed:\n%s", last)
}

// RunWithKeel builds the keel binary into a temporary directory, sets *bin
// to it, runs the tests and removes the directory; it returns the exit code
// for os.Exit (2 if the build failed).
func RunWithKeel(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "keel-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testkit:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	if *bin, err = BuildKeel(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return m.Run()
}
