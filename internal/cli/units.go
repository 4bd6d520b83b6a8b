package cli

import "keel/internal/units"

func parseSize(s string) (uint64, error) { return units.ParseSize(s) }

func formatSize(b uint64) string { return units.FormatSize(b) }
