# Sourced by benchmarks that run podman with its default network: netavark adds iptables
# chains, a podman0 bridge and /run/containers/networks, and sets ip_forward. Record what
# existed before (podman_host_state_record) and undo only what the run created
# (podman_host_state_restore).

podman_host_state_record() {
  had_netavark=$( { iptables -S; iptables -t nat -S; } 2>/dev/null | grep -c NETAVARK || true)
  had_runnet=$([ -e /run/containers/networks ] && echo 1 || echo 0)
  had_podman0=$(ip link show podman0 >/dev/null 2>&1 && echo 1 || echo 0)
  ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)
}

podman_host_state_restore() {
  if [ "$had_netavark" = 0 ]; then
    for t in filter nat; do
      iptables -t "$t" -S 2>/dev/null | grep -- '-j NETAVARK' | sed 's/^-A/-D/' | while read -r rule; do eval iptables -t "$t" "$rule"; done
      for c in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N NETAVARK/{print $2}'); do iptables -t "$t" -F "$c"; done
      for c in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N NETAVARK/{print $2}'); do iptables -t "$t" -X "$c"; done
    done
  fi
  [ "$had_podman0" = 0 ] && ip link del podman0 2>/dev/null
  [ "$had_runnet" = 0 ] && rm -rf /run/containers/networks && rmdir /run/containers 2>/dev/null
  echo "$ip_forward" >/proc/sys/net/ipv4/ip_forward
}
