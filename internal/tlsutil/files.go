package tlsutil

import (
	"fmt"
	"os"
	"path/filepath"
)

// LoadFiles reads the CA certificate, certificate and key PEM files; errors
// name the file that could not be read.
func LoadFiles(caFile, certFile, keyFile string) (caPEM, certPEM, keyPEM []byte, err error) {
	read := func(what, name string) ([]byte, error) {
		if name == "" {
			return nil, fmt.Errorf("tlsutil: no %s file configured: set it in the tls section of the config", what)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("tlsutil: read %s %s: %w", what, name, err)
		}
		return b, nil
	}
	if caPEM, err = read("CA certificate", caFile); err != nil {
		return nil, nil, nil, err
	}
	if certPEM, err = read("certificate", certFile); err != nil {
		return nil, nil, nil, err
	}
	if keyPEM, err = read("key", keyFile); err != nil {
		return nil, nil, nil, err
	}
	return caPEM, certPEM, keyPEM, nil
}

// WriteFile0600 writes data to path atomically with mode 0600: it writes a
// temporary file in the same directory, syncs it, renames it over path and
// syncs the directory. Readers see either the old or the new content.
func WriteFile0600(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("tlsutil: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return fmt.Errorf("tlsutil: write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("tlsutil: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("tlsutil: sync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("tlsutil: close %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tlsutil: write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		// Best effort: make the rename durable.
		_ = d.Sync()
		d.Close()
	}
	return nil
}
