#!/usr/bin/env bash
# Two "machines" on this one: two network namespaces joined by a veth pair (10.N.0.1 and
# 10.N.0.2), and mpirun started in the first with a host file naming both and a remote-launch
# agent that enters the other namespace instead of ssh. The ranks then talk over TCP only, as
# across machines (the file system is shared, as with an NFS home). Needs root (CAP_NET_ADMIN).
#
# Usage: scripts/netns_hosts.sh MPIRUN_ARGS...   e.g. scripts/netns_hosts.sh -np 2 build/difftx train cfg.yml
# Exit status: mpirun's; 77 when the namespaces cannot be made here (no permission, no `ip`).
set -euo pipefail
command -v ip >/dev/null && command -v mpirun >/dev/null || { echo "netns_hosts: needs ip (iproute2) and mpirun" >&2; exit 77; }
tag="dtx$$"
net=$((200 + $$ % 50))
work=$(mktemp -d)
a="${tag}a" b="${tag}b"
cleanup() {
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
if ! { ip netns add "$a" && ip netns add "$b"; } 2>"$work/err"; then
  echo "netns_hosts: cannot make network namespaces here: $(cat "$work/err")" >&2
  exit 77
fi
ip link add "${tag}x" type veth peer name "${tag}y"
ip link set "${tag}x" netns "$a"
ip link set "${tag}y" netns "$b"
ip -n "$a" addr add "10.$net.0.1/24" dev "${tag}x"
ip -n "$b" addr add "10.$net.0.2/24" dev "${tag}y"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "${tag}x" up
ip -n "$b" link set "${tag}y" up
cat > "$work/agent" <<AGENT
#!/bin/sh
# Open MPI's plm_rsh_agent: "agent HOST COMMAND..." runs COMMAND in that host's namespace.
host=\$1; shift
case "\$host" in
  10.$net.0.1) ns=$a ;;
  10.$net.0.2) ns=$b ;;
  *) echo "netns agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
chmod +x "$work/agent"
printf '10.%s.0.1 slots=1\n10.%s.0.2 slots=1\n' "$net" "$net" > "$work/hosts"
set +e
ip netns exec "$a" mpirun --allow-run-as-root --hostfile "$work/hosts" --map-by node --bind-to none \
  --mca plm_rsh_agent "$work/agent" --mca btl tcp,self --mca btl_tcp_if_include "10.$net.0.0/24" \
  --mca oob_tcp_if_include "10.$net.0.0/24" "$@"
status=$?
set -e
exit $status
