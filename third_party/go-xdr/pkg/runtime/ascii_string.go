package runtime

// keel's patch: XDR "string" values are carried as byte strings, unchecked.
// RFC 4506 defines strings as ASCII, but NFS file names and symlink targets
// are any bytes but NUL and '/' in practice (UTF-8 above all), and an NFS
// server must store and return them unchanged. Upstream validates ASCII and
// rejects every other name with GARBAGE_ARGS.

import (
	"io"
	"strings"
)

// ReadASCIIString reads an XDR encoded string value.
func ReadASCIIString(r io.Reader, maximumSizeBytes uint32) (string, int64, error) {
	var builder strings.Builder
	n, err := copyVariableLengthOpaque(r, &builder, maximumSizeBytes)
	if err != nil {
		return "", n, err
	}
	return builder.String(), n, nil
}

// WriteASCIIString writes an XDR encoded string value.
func WriteASCIIString(w io.Writer, maximumSizeBytes uint32, s string) (int64, error) {
	return WriteVariableLengthOpaque(w, maximumSizeBytes, []byte(s))
}
