/**
 * User-mode networking for bubblewrap sandboxes (a namespace workspace, a VM's jail): bringing a
 * sandbox's network to a spec, and taking it down. Egress is slirp4netns attached to the
 * sandbox's own network namespace (`slirp.ts`); the policy, allow-lists, host-loopback
 * protection and the record of denied attempts are nftables rules installed *inside that
 * namespace* by the host (`nft-rules.ts`); names in an allow-list are enforced by a DNS
 * forwarder (`helpers.ts`, `dns-forwarder.ts`). Nothing touches the host's firewall, routes or
 * interfaces, and every helper runs in the sandbox's cgroup and exits with the sandbox. Fails
 * closed: a spec that cannot be applied leaves the sandbox offline. Host-side.
 */
import fs from "node:fs";
import path from "node:path";
import type { HelperProcess, NetworkSpec, PublishedPort, SandboxNetwork } from "./types.js";
import { dropCount, readDropMarker, writeDropMarker } from "./denials.js";
import { helperAlive, startForwarder, stopHelper } from "./helpers.js";
import { TABLE, renderRuleset, restricted } from "./nft-rules.js";
import { hostAddresses, networkTools, requireEgress, requireTools, runInNetns, withNamespaces } from "./netns.js";
import type { NetworkContext, SandboxNamespaces } from "./netns.js";
import { addForward, startSlirp, unpublish } from "./slirp.js";
import { PyroError } from "../../shared/errors.js";

const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Addresses the running forwarder already resolved, to keep them across a rules change. */
async function resolvedAddresses(ns: SandboxNamespaces, nft: string): Promise<string[]> {
  const r = await runInNetns(ns, [nft, "-j", "list", "set", "inet", TABLE, "resolved"]);
  if (r.code !== 0) return [];
  try {
    const parsed = JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
    const elem = parsed.nftables.find((x) => x.set)?.set?.elem ?? [];
    return elem.filter((e): e is string => typeof e === "string");
  } catch {
    return [];
  }
}

/** Routes and rules for `spec`; with the policy off, the loopback default route makes denied attempts reach the rules (to be recorded) instead of failing before them. */
async function applyRules(ns: SandboxNamespaces, spec: NetworkSpec, forwarderPort: number | null, resolved: string[], loopbackToGateway = false): Promise<void> {
  const { nft, ip } = requireTools(["nft", "ip"], "network rules");
  const egress = spec.policy !== "off";
  const ruleset = renderRuleset({
    egress,
    hostAddresses: spec.allowHostLoopback ? [] : hostAddresses(),
    restricted: restricted(spec),
    allowCidrs: spec.allowCidrs,
    resolved,
    dnsForwarderPort: forwarderPort,
    published: spec.policy === "egress+published-ports",
    allowGateway: spec.allowHostLoopback,
    loopbackToGateway,
  });
  // Rules first: a loopback default route without them would make connections hang, not fail.
  const script = [
    "set -e",
    "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet",
    `"$1" -f -`,
    egress ? `"$0" route del default dev lo 2>/dev/null || true` : `"$0" route replace default dev lo`,
  ].join("\n");
  const r = await runInNetns(ns, ["/bin/sh", "-c", script, ip, nft], ruleset);
  if (r.code !== 0) throw new PyroError("network_unavailable", `could not install the sandbox's network rules: ${r.stderr.trim().slice(0, 500)}`);
}

/**
 * Brings a running sandbox's network to `spec`, keeping what does not need to change (the
 * slirp4netns process and its published ports, the forwarder and the addresses it resolved).
 * On failure it falls back to the policy off — never to something more open — and rethrows;
 * `prev` is updated in place either way so the caller can persist what is really applied.
 */
export async function applyNetwork(ctx: NetworkContext, prev: SandboxNetwork | null, spec: NetworkSpec): Promise<SandboxNetwork> {
  const state: SandboxNetwork = prev ?? { spec, recording: false, slirp: null, dnsForwarder: null, published: [], paths: { dir: ctx.dir, log: ctx.log, apiSocket: ctx.apiSocket }, note: null };
  const egress = spec.policy !== "off";
  // Refused before anything changes: the workspace keeps its current network.
  if (egress) requireEgress(spec.policy);
  const tools = networkTools();
  // Helpers started by this call: a failure part-way must not leave one running.
  const started: HelperProcess[] = [];
  try {
    await withNamespaces(ctx.target, async (ns) => {
      if (!tools.get("nft") || !tools.get("ip") || !tools.get("nsenter")) {
        // Policy off without nft: no route out at all; attempts fail at once but are not recorded.
        state.spec = spec;
        state.recording = false;
        state.note = "denied attempts are not recorded: nft (package nftables) is not installed";
        return;
      }
      const needForwarder = egress && spec.allowHosts.length > 0;
      const hostsChanged = !sameList(prev?.spec.allowHosts ?? [], spec.allowHosts);
      const keepForwarder = needForwarder && helperAlive(state.dnsForwarder) && !hostsChanged;
      const oldForwarder = keepForwarder ? null : state.dnsForwarder;
      const restartSlirp = egress && (!helperAlive(state.slirp) || prev?.spec.allowHostLoopback !== spec.allowHostLoopback);

      // Going off: cut the way out before the rules change.
      if (!egress || restartSlirp) {
        await stopHelper(state.slirp);
        state.slirp = null;
      }
      let forwarder = keepForwarder ? state.dnsForwarder : null;
      if (needForwarder && !forwarder) {
        fs.rmSync(path.join(ctx.dir, "dns-denials.jsonl"), { force: true });
        forwarder = await startForwarder(ctx, spec, ns);
        started.push(forwarder);
      }
      // Addresses resolved for allowed names stay allowed while every one of those names still is
      // (adding a name must not cut programs off from the names they already resolved).
      const oldHosts = prev?.spec.allowHosts ?? [];
      const keepResolved = needForwarder && helperAlive(state.dnsForwarder) && oldHosts.every((h) => spec.allowHosts.includes(h));
      const resolved = keepResolved ? await resolvedAddresses(ns, tools.get("nft")!) : [];
      await applyRules(ns, spec, forwarder?.port ?? null, resolved, ctx.loopbackToGateway);
      // The first baseline of this sandbox's drop counter, so its first result skips the nft call.
      if (readDropMarker(ctx.dir, ctx.target.sandboxPid) === null) writeDropMarker(ctx.dir, ctx.target.sandboxPid, dropCount(ctx.target.sandboxPid));
      state.spec = spec;
      state.recording = true;
      state.note = null;
      state.dnsForwarder = forwarder;
      if (oldForwarder) await stopHelper(oldForwarder);

      if (egress && !state.slirp) {
        state.slirp = await startSlirp(ctx, spec, ns);
        started.push(state.slirp);
        // A new slirp4netns has no forwards: put the published ports back.
        const kept: PublishedPort[] = [];
        for (const p of spec.policy === "egress+published-ports" ? state.published : []) {
          const id = await addForward(state.slirp.apiSocket, p.guest_port, p.host_port).catch(() => null);
          if (id !== null) kept.push({ ...p, forward_id: id });
        }
        if (kept.length < state.published.length && spec.policy === "egress+published-ports") {
          state.note = "some published ports could not be restored after the network restarted; start their services again";
        }
        state.published = kept;
      }
      if (spec.policy !== "egress+published-ports" && state.published.length > 0) {
        for (const p of state.published) await unpublish(state, p);
        state.published = [];
      }
    });
    return state;
  } catch (err) {
    for (const h of started) await stopHelper(h);
    await failClosed(ctx, state).catch(() => undefined);
    throw err instanceof PyroError ? err : new PyroError("network_unavailable", `network setup failed: ${(err as Error).message}`);
  }
}

/** After a failure: no helper, no way out, and the state says so. */
async function failClosed(ctx: NetworkContext, state: SandboxNetwork): Promise<void> {
  await stopHelper(state.slirp);
  await stopHelper(state.dnsForwarder);
  state.slirp = null;
  state.dnsForwarder = null;
  state.published = [];
  state.spec = { policy: "off", allowHosts: [], allowCidrs: [], allowHostLoopback: false };
  state.recording = false;
  state.note = "network setup failed, so the workspace is offline (policy off); see the error of the call that failed";
  const tools = networkTools();
  if (tools.get("nft") && tools.get("ip") && tools.get("nsenter")) {
    await withNamespaces(ctx.target, (ns) => applyRules(ns, state.spec, null, [], ctx.loopbackToGateway));
    state.recording = true;
  }
}

/** Kills the helpers of a sandbox being stopped (the cgroup sweep and --exit-fd would get them too). */
export async function stopNetwork(network: SandboxNetwork | null | undefined): Promise<void> {
  if (!network) return;
  await stopHelper(network.slirp);
  await stopHelper(network.dnsForwarder);
  fs.rmSync(network.paths.apiSocket, { force: true });
}
