/**
 * A workspace's network operations: show and change its policy and allow-lists (applied live to
 * a running sandbox), publish and unpublish a service's guest ports on the host's loopback, and
 * turn what the policy blocked into notices for the next result. The policy itself — validation,
 * public shapes, notice wording — is core/network.ts; the enforcement is the backend's. Every
 * change holds the workspace's lock and leaves the record saying what is applied.
 */
import { GUEST_ADDRESS } from "../protocol/guest.js";
import type { PublishedPort } from "../runtime/backend.js";
import { PyroError } from "../shared/errors.js";
import type { WorkspaceManager } from "./manager.js";
import type { StateStore } from "./store.js";
import { applyChange, networkConfig, networkInfo, noticesFor, specOf } from "./network.js";
import type { NetworkChange, NetworkShowResult, PublishRequest } from "./network.js";
import type { WorkspaceRecord } from "./types.js";

const nowIso = () => new Date().toISOString();

export class WorkspaceNetwork {
  constructor(
    private readonly manager: WorkspaceManager,
    private readonly store: StateStore,
  ) {}

  /** The workspace's network: policy, allow-lists, published ports, and what is applied now. */
  async show(ref: string): Promise<NetworkShowResult> {
    const id = await this.manager.resolve(ref);
    const record = await this.manager.reconciled(id);
    return this.result(record);
  }

  /**
   * Changes the network policy, allow-lists or host loopback; a running sandbox gets the change
   * at once (no restart), a stopped one at its next start. Lists given are added to the current
   * ones unless `clearAllowList`. If applying fails, the sandbox is left offline (never more
   * open), the stored policy is unchanged, and the error says why.
   */
  async set(ref: string, change: NetworkChange): Promise<NetworkShowResult> {
    const id = await this.manager.resolve(ref);
    const result = await this.store.withLock(id, async () => {
      const { record } = await this.manager.reconcile(await this.store.load(id));
      if (record.state === "creating") throw new PyroError("workspace_busy", "the workspace is still being created");
      const next = applyChange({ policy: record.network_policy, config: networkConfig(record) }, change);
      if (record.state === "running" && record.sandbox) {
        try {
          await (await this.manager.backendOf(record)).configureNetwork(record.sandbox, specOf(next.policy, next.config));
        } finally {
          // Whatever is applied now (the new network, or the offline fallback) is what the record says.
          await this.store.write(record);
        }
      }
      record.network_policy = next.policy;
      record.network = next.config;
      record.last_activity_at = nowIso();
      await this.store.write(record);
      return this.result(record);
    });
    await this.store.appendEvent(id, {
      at: nowIso(),
      kind: "network_set",
      details: { policy: result.policy, allow_hosts: result.allow_hosts, allow_cidrs: result.allow_cidrs, allow_host_loopback: result.allow_host_loopback },
    });
    return result;
  }

  private result(record: WorkspaceRecord): NetworkShowResult {
    const applied = record.state === "running" ? (record.sandbox?.network ?? null) : null;
    return {
      workspace_id: record.workspace_id,
      ...networkInfo(record.network_policy, networkConfig(record), applied),
      applied: applied !== null && applied.spec.policy === record.network_policy,
      records_denials: applied?.recording ?? false,
      guest_address: applied?.slirp ? GUEST_ADDRESS : null,
      helpers: { slirp4netns_pid: applied?.slirp?.pid ?? null, dns_forwarder_pid: applied?.dnsForwarder?.pid ?? null },
    };
  }

  /**
   * Publishes guest ports of a service on the host's 127.0.0.1, all or none. Needs the policy
   * egress+published-ports; a host port that is taken fails with port_in_use.
   */
  async publishPorts(id: string, service: string, requests: PublishRequest[]): Promise<PublishedPort[]> {
    return this.store.withLock(id, async () => {
      const record = await this.store.load(id);
      if (record.network_policy !== "egress+published-ports") {
        const ref = record.name ?? id;
        throw new PyroError("publish_not_allowed", `workspace ${ref} has the network policy ${record.network_policy}; publishing ports needs egress+published-ports`, {
          hint: `Run \`pyro workspace network set ${ref} --network-policy egress+published-ports\` (MCP: workspace_network_set with network_policy "egress+published-ports"), then start the service again.`,
        });
      }
      const sandbox = record.sandbox;
      if (record.state !== "running" || !sandbox) throw new PyroError("workspace_stopped", `workspace ${record.name ?? id} is ${record.state}`);
      const backend = await this.manager.backendOf(record);
      const added: PublishedPort[] = [];
      try {
        for (const r of requests) added.push(await backend.publishPort(sandbox, service, r.guestPort, r.hostPort));
      } catch (err) {
        for (const p of added) await backend.unpublishPort(sandbox, p).catch(() => undefined);
        throw err;
      }
      if (sandbox.network) sandbox.network.published.push(...added);
      await this.store.write(record);
      return added;
    });
  }

  /** Removes a service's published ports (service stop, restart, failed start). */
  async unpublishService(id: string, service: string): Promise<void> {
    const current = await this.store.read(id);
    if (!current?.sandbox?.network?.published.some((p) => p.service === service)) return;
    await this.store.withLock(id, async () => {
      const record = await this.store.load(id);
      const network = record.sandbox?.network;
      if (!record.sandbox || !network) return;
      const backend = await this.manager.backendOf(record);
      for (const p of network.published.filter((x) => x.service === service)) await backend.unpublishPort(record.sandbox, p).catch(() => undefined);
      network.published = network.published.filter((x) => x.service !== service);
      await this.store.write(record);
    });
  }

  /** The published ports of a running workspace, by service. */
  async publishedPorts(id: string): Promise<PublishedPort[]> {
    const record = await this.store.read(id);
    return record?.state === "running" ? (record.sandbox?.network?.published ?? []) : [];
  }

  /**
   * What the network policy blocked since the last result, as notices naming the call that
   * allows it; each denial is reported once. Never fails the call it is attached to.
   */
  async notices(record: WorkspaceRecord): Promise<string[]> {
    const sandbox = record.sandbox;
    if (!sandbox?.network) return [];
    try {
      const denials = await (await this.manager.backendOf(record)).takeNetworkDenials(sandbox);
      return denials.length === 0 ? [] : noticesFor(record.name ?? record.workspace_id, record.network_policy, denials);
    } catch {
      return [];
    }
  }
}
