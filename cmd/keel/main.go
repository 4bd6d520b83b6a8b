// Command keel is replicated, self-healing network storage for a handful of
// machines. See README.md.
package main

import (
	"os"

	"keel/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
