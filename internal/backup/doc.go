// Package backup owns keel's backups of volumes to object storage: push a
// volume snapshot, list, verify, restore into a new volume, prune. Where the
// objects live is behind Store, a small interface (put, get, stat, list,
// delete of immutable objects by key); backup/file keeps them in a local
// directory (file:///path), backup/s3 in an S3 bucket (s3://bucket/prefix).
// Open picks one by the URL's scheme.
//
// Push, restore and verify run on the leader (internal/node's admin API
// calls them), so a file:// path names a directory on the leader's machine.
//
// # Format (version 1)
//
// A store holds three kinds of objects:
//
//	chunks/<h[:2]>/<h>          file data: one piece of at most 64 KiB
//	                            (fsstate.ChunkSize) whose SHA-256 is h (hex)
//	backups/<volume>/<id>.json  one manifest per backup
//	locks/<id>.json             a push in progress (deleted when it ends)
//
// Chunks are content-addressed: a file is cut at every multiple of 64 KiB,
// each non-zero piece is stored under its hash, and identical pieces (in one
// file, across files, volumes and backups) are stored once. A piece of all
// zeros is a hole and is not stored. A push therefore uploads only the
// pieces the store lacks: the first push of a volume uploads its data, the
// next ones about what changed (in 64 KiB units). Every object is checked on
// read: a chunk's content must hash to its key.
//
// A backup exists when its manifest does, and the manifest is written last,
// after every chunk it names is stored: an interrupted push leaves chunks
// (reused by the next push, or removed by prune) but no backup. Ids sort by
// time: 20261125T154000Z-1a2b3c (UTC second, random suffix).
//
// The manifest object is JSON:
//
//	{"format":1,"sha256":"<hex of the manifest's bytes>","manifest":{…}}
//
// where sha256 covers exactly the bytes of the "manifest" value as stored,
// so a truncated or altered manifest is detected. The manifest holds:
//
//   - format, id, volume, volume_id, size_limit, export (recorded only);
//   - snapshot: the volume snapshot read (name keel-backup-<id>, raft_index,
//     time: the state is the volume's just before that raft entry);
//   - written (when the push ended), chunk_size (65536);
//   - totals: inodes, files, dirs, symlinks, hard_links, bytes (sum of file
//     sizes), data_bytes (stored data, holes excluded), chunks, distinct
//     chunks and bytes;
//   - inodes: the tree, breadth first (the root first, each directory
//     before its entries). Each has ino (in the source), type (dir, file,
//     symlink), paths (absolute; several for a file with hard links), mode
//     (permission bits, 07777), uid, gid, atime, mtime, ctime (RFC 3339,
//     nanoseconds), size, target (symlinks) and chunks: [{off, len,
//     sha256}] by offset; a range without a chunk is a hole. Names are
//     JSON strings when valid UTF-8, else {"base64": "…"} (names are bytes).
//
// Restore creates the volume, the directories, then files (data, then
// size, mode, owner and times), symlinks and further hard links, and last
// the directories' attributes. Ctime cannot be set and becomes the restore's
// time; stored zeros come back as holes (same content, less space).
//
// Prune keeps the newest N backups and/or the newest of each of the last N
// days per volume, deletes the other manifests, then every chunk no kept
// manifest names. It refuses while a push's lock is younger than a day.
package backup
