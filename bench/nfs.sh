#!/usr/bin/env bash
# bench/nfs.sh: keel's NFS service against NFS-Ganesha, in one invocation.
#
# Builds keel and runs `keel bench nfs`, which serves one directory on the
# disk of --dir (default: $TMPDIR or /tmp) in turn with keel with 1 data node,
# keel with 3 data nodes (real `keel serve` processes) and NFS-Ganesha with
# FSAL VFS, and drives each with the same clients: a 256 MiB sequential write
# and read with libnfs' nfs-cp, and 10,000 × CREATE + GETATTR + REMOVE with
# keel's Go NFSv3 client. It prints MiB/s and ops/s in one table, with what an
# acknowledged write meant on each server, the CPU each process used and
# keel's targets. Arguments go to `keel bench nfs` (--size, --files, --dir,
# --servers, --json).
#
# keel answers every WRITE FILE_SYNC unless KEEL_NFS_UNSTABLE_WRITES=1 is set
# (it is passed on to the keel processes); the README's figures say which.
#
# Needs nfs-cp (libnfs-utils) and, for the Ganesha row, nfs-ganesha,
# nfs-ganesha-vfs and rpcbind; with INSTALL=1 (and root) the script installs
# what is missing with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nfs-cp >/dev/null || need+=(libnfs-utils)
command -v ganesha.nfsd >/dev/null || need+=(nfs-ganesha nfs-ganesha-vfs)
command -v rpcbind >/dev/null || need+=(rpcbind)
if ((${#need[@]})); then
	if [[ ${INSTALL:-0} == 1 ]]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
	else
		echo "bench/nfs.sh: missing ${need[*]}: install them (apt-get install ${need[*]}) or run with INSTALL=1 as root" >&2
		command -v nfs-cp >/dev/null || exit 1 # without nfs-cp nothing can run; without Ganesha its row says so
	fi
fi

bin=$(mktemp -d)/keel
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/keel
echo "machine: $(nproc) CPUs; $(uptime)" >&2
"$bin" bench nfs "$@"
echo "after: $(uptime)" >&2
