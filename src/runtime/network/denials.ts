/**
 * Denied attempts, as the user sees them: connections the sandbox's firewall dropped (an nft set
 * inside its network namespace) and names the DNS forwarder refused (its journal), each taken
 * once. A drop counter read from /proc lets the common case — nothing denied since the last
 * look — skip entering the namespace at all. Host-side.
 */
import fs from "node:fs";
import path from "node:path";
import type { NetworkDenial, SandboxNetwork } from "./types.js";
import { TABLE, restricted } from "./nft-rules.js";
import { hostAddresses, requireTools, runInNetns, withNamespaces } from "./netns.js";
import type { NetnsTarget } from "./netns.js";

/**
 * Packets the sandbox sent that never left it (IPv4 OutRequests − OutTransmits, kernel ≥ 6.3):
 * every denial drops one, so an unchanged count means there is nothing to read and the caller
 * skips the nft query. null when the kernel does not count transmissions.
 */
export function dropCount(sandboxPid: number): number | null {
  try {
    const lines = fs.readFileSync(`/proc/${sandboxPid}/net/snmp`, "utf8").split("\n");
    const i = lines.findIndex((l) => l.startsWith("Ip: ") && l.includes("OutRequests"));
    const keys = lines[i]!.split(/\s+/);
    const values = lines[i + 1]!.split(/\s+/);
    const req = keys.indexOf("OutRequests");
    const tx = keys.indexOf("OutTransmits");
    if (req < 0 || tx < 0) return null;
    return Number(values[req]) - Number(values[tx]);
  } catch {
    return null;
  }
}

interface NftElement {
  concat?: [string, string, number];
}

export async function takeDenials(network: SandboxNetwork, target: NetnsTarget): Promise<NetworkDenial[]> {
  const denials: NetworkDenial[] = [];
  // Names the forwarder refused: take its journal by renaming it away (it appends to a new one).
  const journal = path.join(network.paths.dir, "dns-denials.jsonl");
  if (network.dnsForwarder && fs.existsSync(journal)) {
    const taken = `${journal}.${process.pid}.taken`;
    try {
      fs.renameSync(journal, taken);
      for (const line of fs.readFileSync(taken, "utf8").split("\n")) {
        try {
          const name = (JSON.parse(line) as { name?: unknown }).name;
          if (typeof name === "string" && name.length <= 253) denials.push({ kind: "dns", name });
        } catch {
          // a torn last line
        }
      }
    } catch {
      // someone else took it
    } finally {
      fs.rmSync(taken, { force: true });
    }
  }
  if (!network.recording) return denials;
  // Nothing can be denied at the IP level when egress is open to everything.
  if (network.spec.policy !== "off" && network.spec.allowHostLoopback && !restricted(network.spec)) return denials;

  const drops = dropCount(target.sandboxPid);
  if (drops !== null && readDropMarker(network.paths.dir, target.sandboxPid) === drops) return denials;
  const { nft } = requireTools(["nft"], "reading denied attempts");
  const hosts = new Set(network.spec.allowHostLoopback ? [] : hostAddresses());
  await withNamespaces(target, async (ns) => {
    const r = await runInNetns(ns, [nft, "-j", "list", "set", "inet", TABLE, "denied"]);
    if (r.code !== 0) return;
    let elems: { val?: NftElement; elem?: { val?: NftElement } }[] = [];
    try {
      const parsed = JSON.parse(r.stdout) as { nftables: { set?: { elem?: typeof elems } }[] };
      elems = parsed.nftables.find((x) => x.set)?.set?.elem ?? [];
    } catch {
      return;
    }
    const taken: string[] = [];
    for (const e of elems) {
      const concat = (e.elem?.val ?? e.val)?.concat;
      if (!Array.isArray(concat) || concat.length !== 3) continue;
      const [address, protocol, port] = concat;
      if (typeof address !== "string" || (protocol !== "tcp" && protocol !== "udp") || typeof port !== "number") continue;
      taken.push(`${address} . ${protocol} . ${port}`);
      denials.push({ kind: "connect", protocol, address, port, host_side: hosts.has(address) });
    }
    if (taken.length > 0) await runInNetns(ns, [nft, "delete", "element", "inet", TABLE, "denied", `{ ${taken.join(", ")} }`]);
  });
  writeDropMarker(network.paths.dir, target.sandboxPid, drops);
  return denials;
}

/** The drop count last seen for this sandbox (a restarted sandbox counts from zero again). */
export function readDropMarker(dir: string, sandboxPid: number): number | null {
  try {
    const [pid, count] = fs.readFileSync(path.join(dir, "drops"), "utf8").split(":");
    return Number(pid) === sandboxPid && count !== "" && count !== undefined ? Number(count) : null;
  } catch {
    return null;
  }
}

export function writeDropMarker(dir: string, sandboxPid: number, count: number | null): void {
  if (count === null) return;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, "drops"), `${sandboxPid}:${count}`, { mode: 0o600 });
}
