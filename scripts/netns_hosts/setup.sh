#!/bin/bash
# Two "hosts" on one Linux machine, to exercise tinybert's multi-host path (docs/distributed.md):
# network namespaces tbA (10.77.0.1) and tbB (10.77.0.2) joined by a veth pair, each with its
# own loopback. Needs root (or CAP_NET_ADMIN). Undo with teardown.sh.
set -euo pipefail
ip netns add tbA
ip netns add tbB
ip link add vethA type veth peer name vethB
ip link set vethA netns tbA
ip link set vethB netns tbB
ip -n tbA addr add 10.77.0.1/24 dev vethA
ip -n tbB addr add 10.77.0.2/24 dev vethB
for ns in tbA tbB; do ip -n "$ns" link set lo up; done
ip -n tbA link set vethA up
ip -n tbB link set vethB up
echo "hosts 10.77.0.1 (tbA) and 10.77.0.2 (tbB) are up"
