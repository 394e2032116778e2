/**
 * The nftables ruleset pyro installs inside a sandbox's own network namespace — never in the
 * host's. Code in the sandbox has no CAP_NET_ADMIN, so it can neither read nor change these
 * rules; they are the enforcement point of the policy, the allow-list and host-loopback
 * protection, and the place where denied attempts are recorded (the `denied` set, read and
 * emptied by the host). Pure: renders text for `nft -f`.
 */

import type { NetworkSpec } from "./types.js";
import { GUEST_ADDRESS, HOST_GATEWAY, SLIRP_DNS } from "../../protocol/guest.js";

/** slirp4netns's device inside the sandbox; its addressing (--configure defaults) is in protocol/guest.ts. */
export const TAP_DEVICE = "tap0";
export const TABLE = "pyro";
/** Bound on recorded denials between two reads; older ones time out after an hour. */
export const DENIED_SET_SIZE = 1024;

export interface RulesInput {
  /** `off`: nothing leaves the sandbox; egress policies: see below. */
  egress: boolean;
  /** Addresses that stand for the host itself (its loopback through the gateway, its interfaces); empty when allowed. */
  hostAddresses: string[];
  /** An allow-list is in force: only these CIDRs and the addresses resolved for allowed names pass. */
  restricted: boolean;
  allowCidrs: string[];
  /** Addresses the forwarder already resolved for allowed names (kept across a rule change). */
  resolved: string[];
  /** Port of the allow-list DNS forwarder on the sandbox's 127.0.0.1; all DNS is sent there. */
  dnsForwarderPort: number | null;
  /** Inbound connections from published ports reach services bound to 127.0.0.1 too. */
  published: boolean;
  /** The host's loopback (the gateway) was allowed explicitly: it passes an allow-list too. */
  allowGateway: boolean;
  /** VM jails: connections to the jail's 127.0.0.1 are the guest's to its gateway (see `NetworkContext` in netns.ts). */
  loopbackToGateway?: boolean;
}

const elements = (items: string[]) => (items.length > 0 ? ` elements = { ${items.join(", ")} };` : "");

/**
 * One transaction that replaces the whole table (`nft -f` applies a file atomically), so a
 * policy change never passes through a state where neither the old nor the new rules hold.
 */
export function renderRuleset(input: RulesInput): string {
  const lines: string[] = [];
  // `add table` makes the following `delete` valid on the first run.
  lines.push(`add table inet ${TABLE}`, `delete table inet ${TABLE}`, `table inet ${TABLE} {`);
  lines.push(`  set denied { type ipv4_addr . inet_proto . inet_service; flags dynamic, timeout; timeout 1h; size ${DENIED_SET_SIZE}; }`);
  lines.push(`  set host { type ipv4_addr; flags interval;${elements(input.hostAddresses)} }`);
  lines.push(`  set allow { type ipv4_addr; flags interval;${elements(input.allowCidrs)} }`);
  lines.push(`  set resolved { type ipv4_addr;${elements(input.resolved)} }`);

  // DNS. With an allow-list every query goes to the forwarder, whatever server the program
  // asked for; otherwise queries to the sandbox's own loopback (an empty resolv.conf means
  // 127.0.0.1, systemd's stub is 127.0.0.53) go to slirp4netns's resolver — or, with the policy
  // off, there, to be refused and recorded like any other attempt.
  lines.push("  chain dns_redirect {", "    type nat hook output priority -100; policy accept;");
  if (input.dnsForwarderPort !== null) {
    lines.push(`    meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 redirect to :${input.dnsForwarderPort}`);
  } else {
    lines.push(`    ip daddr 127.0.0.0/8 meta l4proto { tcp, udp } th dport 53 dnat ip to ${SLIRP_DNS}`);
  }
  if (input.loopbackToGateway && input.egress) lines.push(`    ip daddr 127.0.0.1 meta l4proto { tcp, udp } dnat ip to ${HOST_GATEWAY}`);
  lines.push("  }");
  if (input.egress) {
    // Loopback-sourced packets that the DNS rule sent out through the tap need a real source.
    lines.push("  chain source_nat {", "    type nat hook postrouting priority 100; policy accept;", `    oifname "${TAP_DEVICE}" ip saddr 127.0.0.0/8 masquerade`, "  }");
  }
  if (input.published) {
    lines.push("  chain publish_in {", "    type nat hook prerouting priority -100; policy accept;", `    iifname "${TAP_DEVICE}" ip daddr ${GUEST_ADDRESS} meta l4proto tcp dnat ip to 127.0.0.1`, "  }");
  }

  lines.push("  chain outbound {", "    type filter hook output priority 0; policy accept;");
  lines.push("    fib daddr type local accept");
  lines.push("    ct state established,related accept");
  if (!input.egress) {
    lines.push("    jump refuse");
  } else {
    if (input.hostAddresses.length > 0) lines.push("    ip daddr @host jump refuse");
    if (input.restricted) {
      if (input.allowGateway) lines.push(`    ip daddr ${HOST_GATEWAY} accept`);
      lines.push("    ip daddr @allow accept", "    ip daddr @resolved accept", "    jump refuse");
    }
  }
  lines.push("  }");

  // Record first (a full set only skips the record), then refuse fast: a TCP reset gives
  // "connection refused" at once, a UDP send fails with EPERM; anything else is dropped.
  lines.push("  chain refuse {");
  lines.push("    meta l4proto { tcp, udp } update @denied { ip daddr . meta l4proto . th dport }");
  lines.push("    meta l4proto tcp reject with tcp reset");
  lines.push("    meta l4proto udp reject with icmpx type admin-prohibited");
  lines.push("    drop");
  lines.push("  }");
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/** An allow-list is in force: only what it names (and, for names, what they resolved to) may be reached. */
export function restricted(spec: NetworkSpec): boolean {
  return spec.allowHosts.length > 0 || spec.allowCidrs.length > 0;
}
