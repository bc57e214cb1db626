#!/bin/bash
# Remove the namespaces of setup.sh (the veth pair goes with them).
ip netns del tbA 2>/dev/null || true
ip netns del tbB 2>/dev/null || true
