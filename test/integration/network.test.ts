/**
 * Network policy end to end, on real sandboxes: `off` blocks and says so, `egress` reaches a
 * server, the host's loopback stays out of reach unless allowed, allow-lists by name and CIDR
 * hold (with the notice in the next result), `network set` works on a running workspace,
 * published ports reach a service from the host, and no helper process outlives its workspace.
 *
 * The only servers these tests reach are their own: one on this host's loopback, and a "remote"
 * one inside a network namespace the test creates (veth pair, a private 10.203.x.0/24), which
 * slirp4netns reaches through the host's routing table like any outside address. Names come
 * from a tiny DNS server on the host's loopback, given to pyro's forwarder by PYRO_DNS_UPSTREAM.
 *
 * Runs as root and as an ordinary user (who enters each sandbox through its user namespace);
 * as an ordinary user it needs a remote world root prepared (test/network-world.ts) and a
 * /dev/net/tun the user can open.
 */
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { Pyro } from "../../src/index.js";
import { createMcpServer } from "../../src/mcp/server.js";
import { buildAResponse, emptyAnswer, parseQuery, RCODE_NXDOMAIN } from "../../src/runtime/network/dns-wire.js";
import { cli, findLeaks, hostGet, httpGetScript, noLeaks, startTestNetwork, testHome, TEST_ENVIRONMENT } from "../helpers.js";
import type { TestNetwork } from "../helpers.js";

let REMOTE: string;
let REMOTE_OTHER: string;
/** The remote server again, on a link-local address (where cloud metadata services live). */
let LINK_LOCAL: string;
let home: string;
let pyro: Pyro;
let world: TestNetwork;
let hostPort: number;
let dns: dgram.Socket;

const get = httpGetScript;
const bash = (script: string) => ["bash", "-c", script];

function alive(pid: number | null): boolean {
  if (pid === null) return false;
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

beforeAll(async () => {
  world = await startTestNetwork(203);
  ({ remote: REMOTE, remoteOther: REMOTE_OTHER, linkLocal: LINK_LOCAL, hostPort } = world);

  // Our own DNS answers for the allow-list tests.
  const zone: Record<string, string[]> = { "allowed.pyro.test": [REMOTE], "api.dev.pyro.test": [REMOTE], "other.pyro.test": [REMOTE_OTHER], "metadata.pyro.test": [`${LINK_LOCAL}`] };
  dns = dgram.createSocket("udp4");
  dns.on("message", (msg, from) => {
    const q = parseQuery(msg);
    if (!q) return;
    const ips = zone[q.name];
    dns.send(ips ? buildAResponse(msg, q, ips) : emptyAnswer(msg, q, RCODE_NXDOMAIN), from.port, from.address);
  });
  await new Promise<void>((r) => dns.bind(0, "127.0.0.1", () => r()));
  process.env.PYRO_DNS_UPSTREAM = `127.0.0.1:${dns.address().port}`;

  home = testHome("network");
  pyro = new Pyro({ home });
});

afterAll(async () => {
  for (const w of (await pyro.listWorkspaces()).workspaces) await pyro.deleteWorkspace(w.workspace_id);
  pyro.close();
  world?.stop();
  dns?.close();
  expect(findLeaks(home)).toEqual(noLeaks());
});

describe("the policy off", () => {
  it("blocks every destination but the workspace's own loopback, fails fast, and says so in the next result", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "net-off" });
    expect(ws.network_policy).toBe("off");
    expect(ws.network).toMatchObject({ policy: "off", published_ports: [] });
    const r = await pyro.execWorkspace("net-off", { command: bash(`${get("10.0.2.2", hostPort)}; echo "host=$?"; ${get(REMOTE, 8080)}; echo "remote=$?"; getent hosts example.org; echo "dns=$?"`) });
    expect(r.stdout).toBe("host=1\nremote=1\ndns=2\n");
    expect(r.duration_ms).toBeLessThan(2000);
    expect(r.network_notices.join("\n")).toContain(`TCP to ${REMOTE}:8080`);
    expect(r.network_notices.join("\n")).toContain("a DNS lookup");
    expect(r.network_notices.every((n) => n.includes("pyro workspace network set net-off --network-policy egress"))).toBe(true);
    // Said once: the next result has nothing new.
    expect((await pyro.execWorkspace("net-off", { command: "true" })).network_notices).toEqual([]);
    // The workspace's own loopback works.
    const local = await pyro.execWorkspace("net-off", { command: bash(`(perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>"127.0.0.1:7000",Listen=>1,ReuseAddr=>1); $c=$s->accept; print $c "local ok\\n"' &) ; sleep 0.3; exec 3<>/dev/tcp/127.0.0.1/7000 && cat <&3`) });
    expect(local.stdout).toBe("local ok\n");
  });
});

describe("the policy egress", () => {
  it("reaches an outside server, keeps the host's loopback out of reach unless allowed, and lets the change happen live", async () => {
    const ws = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "net-egress", networkPolicy: "egress" });
    expect(ws.network).toMatchObject({ policy: "egress", allow_host_loopback: false });
    await pyro.startService("net-egress", "keeper", { command: "sleep 1000" });
    const keeperPid = (await pyro.statusService("net-egress", "keeper")).pid;

    const r = await pyro.execWorkspace("net-egress", { command: bash(`${get(REMOTE, 8080)}; ${get("10.0.2.2", hostPort)}; echo "host=$?"`) });
    expect(r.stdout).toBe(`hello from ${REMOTE}\nhost=1\n`);
    expect(r.duration_ms).toBeLessThan(2000);
    expect(r.network_notices).toHaveLength(1);
    expect(r.network_notices[0]).toContain(`the host itself (10.0.2.2:${hostPort})`);
    expect(r.network_notices[0]).toContain("`pyro workspace network set net-egress --allow-host-loopback`");

    const set = await pyro.setWorkspaceNetwork("net-egress", { allowHostLoopback: true });
    expect(set).toMatchObject({ applied: true, allow_host_loopback: true, guest_address: "10.0.2.100" });
    const after = await pyro.execWorkspace("net-egress", { command: bash(get("10.0.2.2", hostPort)) });
    expect(after.stdout).toBe("hello from the host loopback\n");
    // Live: the same sandbox, its service untouched.
    expect((await pyro.statusService("net-egress", "keeper"))).toMatchObject({ state: "running", pid: keeperPid });

    // And back off, live too.
    await pyro.setWorkspaceNetwork("net-egress", { networkPolicy: "off" });
    const off = await pyro.execWorkspace("net-egress", { command: bash(`${get(REMOTE, 8080)}; echo "remote=$?"`) });
    expect(off.stdout).toBe("remote=1\n");
    expect(off.network_notices[0]).toContain("network policy is off");
    expect((await pyro.statusService("net-egress", "keeper")).pid).toBe(keeperPid);
  });

  it("runs one-shot commands with egress through `pyro run`", () => {
    const r = cli(home, ["run", TEST_ENVIRONMENT, "--network-policy", "egress", "--json", "--", "bash", "-c", get(REMOTE, 8080)]);
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ stdout: `hello from ${REMOTE}\n`, network_notices: [], cleaned_up: true });
  });
});

describe("allow-lists", () => {
  it("let an allow-listed name through, refuse another name and an unlisted address, and say how to allow each", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "net-allow", networkPolicy: "egress", allowHosts: ["allowed.pyro.test", "*.dev.pyro.test"] });
    const r = await pyro.execWorkspace("net-allow", {
      command: bash(`${get("allowed.pyro.test", 8080)}; ${get("api.dev.pyro.test", 8080)}; ${get("other.pyro.test", 8080)}; echo "name=$?"; ${get(REMOTE_OTHER, 8080)}; echo "address=$?"`),
    });
    expect(r.stdout).toBe(`hello from ${REMOTE}\nhello from ${REMOTE}\nname=1\naddress=1\n`);
    const notices = r.network_notices.join("\n");
    expect(notices).toContain("refused to resolve other.pyro.test");
    expect(notices).toContain("`pyro workspace network set net-allow --allow-host other.pyro.test`");
    expect(notices).toContain(`TCP to ${REMOTE_OTHER}:8080`);
    expect(notices).toContain(`--allow-cidr ${REMOTE_OTHER}/32`);

    // DNS goes only to pyro's forwarder: asking another server directly is redirected to it.
    const direct = await pyro.execWorkspace("net-allow", { command: bash(`echo 'nameserver 198.51.100.53' > /etc/resolv.conf; getent hosts other.pyro.test; echo "dns=$?"; getent hosts allowed.pyro.test`) });
    expect(direct.stdout).toMatch(new RegExp(`^dns=2\n${REMOTE.replace(/\./g, "\\.")} +allowed\\.pyro\\.test\n$`));

    // Allowing the name, live, lets it through; names resolved before stay reachable.
    const set = await pyro.setWorkspaceNetwork("net-allow", { allowHosts: ["other.pyro.test"] });
    expect(set.allow_hosts).toEqual(["*.dev.pyro.test", "allowed.pyro.test", "other.pyro.test"]);
    const now = await pyro.execWorkspace("net-allow", { command: bash(`${get("other.pyro.test", 8080)}; ${get(REMOTE, 8080)}`) });
    expect(now.stdout).toBe(`hello from ${REMOTE_OTHER}\nhello from ${REMOTE}\n`);
    expect(now.network_notices).toEqual([]);
  });

  it("never let an allowed name open a link-local address, and let the host's loopback through when it is allowed", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "net-rebind", networkPolicy: "egress", allowHosts: ["metadata.pyro.test"], allowCidrs: [`${REMOTE}/32`], allowHostLoopback: true });
    const r = await pyro.execWorkspace("net-rebind", { command: bash(`getent hosts metadata.pyro.test; ${get("metadata.pyro.test", 8080)}; echo "by-name=$?"; ${get(REMOTE, 8080)}; ${get("10.0.2.2", hostPort)}`) });
    expect(r.stdout).toMatch(new RegExp(`by-name=1\nhello from ${REMOTE.replace(/\./g, "\\.")}\nhello from the host loopback\n$`));
    expect(r.network_notices.join("\n")).toContain(`--allow-cidr ${LINK_LOCAL}/32`);
    await pyro.setWorkspaceNetwork("net-rebind", { allowCidrs: [`${LINK_LOCAL}`] });
    expect((await pyro.execWorkspace("net-rebind", { command: bash(get("metadata.pyro.test", 8080)) })).stdout).toBe(`hello from ${LINK_LOCAL}\n`);
  });

  it("hold by CIDR, and report denials in shell reads and service logs too", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "net-cidr", networkPolicy: "egress", allowCidrs: [`${REMOTE}/32`] });
    const ok = await pyro.execWorkspace("net-cidr", { command: bash(get(REMOTE, 8080)) });
    expect(ok.stdout).toBe(`hello from ${REMOTE}\n`);

    const shell = await pyro.openShell("net-cidr");
    await pyro.writeShell("net-cidr", shell.shell_id, { input: `${get(REMOTE_OTHER, 8080)}; echo shell-done` });
    const read = await pyro.readShell("net-cidr", shell.shell_id, { plain: true, waitForPattern: "^shell-done", timeoutMs: 5000 });
    expect(read.network_notices.join("\n")).toContain(`TCP to ${REMOTE_OTHER}:8080`);
    await pyro.closeShell("net-cidr", shell.shell_id);

    await pyro.startService("net-cidr", "poller", { command: bash(`${get(REMOTE_OTHER, 8081)}; echo polled; sleep 1000`), readiness: { type: "command", command: "true" } });
    await new Promise((r) => setTimeout(r, 500));
    const logs = await pyro.logsService("net-cidr", "poller");
    expect(logs.network_notices.join("\n")).toContain(`TCP to ${REMOTE_OTHER}:8081`);
  });
});

describe("published ports", () => {
  const SERVER = `perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalAddr=>"127.0.0.1:8000",Listen=>16,ReuseAddr=>1) or die "listen: $!"; while($c=$s->accept){ <$c>; print $c "HTTP/1.0 200 OK\\r\\n\\r\\nhello from the workspace\\n"; close $c }'`;

  it("reach a service from the host on 127.0.0.1, follow its lifecycle, and refuse a host port in use", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "net-pub", networkPolicy: "egress" });
    await expect(pyro.startService("net-pub", "web", { command: SERVER, publish: [8000] })).rejects.toMatchObject({ code: "publish_not_allowed" });
    // The refusal happened before anything started.
    expect((await pyro.listServices("net-pub")).count).toBe(0);

    await pyro.setWorkspaceNetwork("net-pub", { networkPolicy: "egress+published-ports" });
    const web = await pyro.startService("net-pub", "web", { command: SERVER, readiness: { type: "tcp", port: 8000 }, publish: [8000] });
    expect(web.state).toBe("ready");
    expect(web.published_ports).toHaveLength(1);
    const port = web.published_ports[0]!;
    expect(port).toMatchObject({ service: "web", guest_port: 8000, host_address: "127.0.0.1", address: `127.0.0.1:${port.host_port}` });
    expect(await hostGet(port.host_port)).toBe("hello from the workspace\n");
    expect((await pyro.statusWorkspace("net-pub")).network.published_ports).toEqual([port]);

    // Published on 127.0.0.1 only.
    const listeners = fs.readFileSync("/proc/net/tcp", "utf8");
    expect(listeners).toContain(`0100007F:${port.host_port.toString(16).toUpperCase().padStart(4, "0")} 00000000:0000 0A`);

    // A host port that is taken: a clear error with a stable code, and nothing started.
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
    const busyPort = (busy.address() as net.AddressInfo).port;
    const refused = cli(home, ["workspace", "service", "start", "net-pub", "web2", "--publish", `8001:${busyPort}`, "--json", "--", "sleep", "100"]);
    busy.close();
    expect(refused.code).toBe(1);
    expect(refused.json().error).toMatchObject({ code: "port_in_use", details: { host_port: busyPort } });
    expect((await pyro.listServices("net-pub")).services.map((s) => s.name)).toEqual(["web"]);

    // Gone when the service stops.
    await pyro.stopService("net-pub", "web");
    expect(await hostGet(port.host_port)).toBe("error ECONNREFUSED");
    expect((await pyro.statusWorkspace("net-pub")).network.published_ports).toEqual([]);

    // A chosen host port, through the CLI; gone after a reset.
    const chosen = await new Promise<number>((r) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => r(p));
      });
    });
    const started = cli(home, ["workspace", "service", "start", "net-pub", "web", "--ready-tcp", "8000", "--publish", `8000:${chosen}`, "--json", "--shell", SERVER]);
    expect(started.code).toBe(0);
    expect(started.json().published_ports).toEqual([{ service: "web", guest_port: 8000, host_address: "127.0.0.1", host_port: chosen, address: `127.0.0.1:${chosen}` }]);
    expect(await hostGet(chosen)).toBe("hello from the workspace\n");
    const listed = cli(home, ["workspace", "list", "--json"]).json().workspaces.find((w: { name: string }) => w.name === "net-pub");
    expect(listed.network).toMatchObject({ policy: "egress+published-ports", published_ports: [{ host_port: chosen }] });
    await pyro.resetWorkspace("net-pub");
    expect(await hostGet(chosen)).toBe("error ECONNREFUSED");
    expect((await pyro.statusWorkspace("net-pub")).network).toMatchObject({ policy: "egress+published-ports", published_ports: [] });
  });
});

describe("surfaces", () => {
  it("shows and changes the network through the CLI", () => {
    const created = cli(home, ["workspace", "create", TEST_ENVIRONMENT, "--name", "net-cli", "--network-policy", "egress", "--allow-host", "allowed.pyro.test", "--json"]);
    expect(created.code).toBe(0);
    expect(created.json().network).toMatchObject({ policy: "egress", allow_hosts: ["allowed.pyro.test"] });
    const set = cli(home, ["workspace", "network", "set", "net-cli", "--clear-allow-list", "--allow-cidr", `${REMOTE}/32`, "--allow-host-loopback", "--json"]);
    expect(set.json()).toMatchObject({ policy: "egress", allow_hosts: [], allow_cidrs: [`${REMOTE}/32`], allow_host_loopback: true, applied: true });
    const shown = cli(home, ["workspace", "network", "show", "net-cli"]);
    expect(shown.stdout).toContain(`Policy: egress (allow only: ${REMOTE}/32; host loopback allowed)`);
    const back = cli(home, ["workspace", "network", "set", "net-cli", "--no-allow-host-loopback", "--json"]);
    expect(back.json().allow_host_loopback).toBe(false);
    const exec = cli(home, ["workspace", "exec", "net-cli", "--", "bash", "-c", `${get(REMOTE_OTHER, 8080)} || true`]);
    expect(exec.stderr).toContain(`[pyro] network: blocked TCP to ${REMOTE_OTHER}:8080`);
    const bad = cli(home, ["workspace", "network", "set", "net-cli", "--network-policy", "everything", "--json"]);
    expect(bad.json().error.code).toBe("invalid_argument");
  });

  it("shows and changes the network through MCP (workspace-full), with notices in exec results", async () => {
    const server = createMcpServer(pyro, { profile: "workspace-full" });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const client = new Client({ name: "network-test", version: "0.0.0" });
    await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
    try {
      const created = await client.callTool({ name: "workspace_create", arguments: { environment: TEST_ENVIRONMENT, name: "net-mcp", network_policy: "egress", allow_cidrs: [`${REMOTE}/32`] } });
      expect((created.structuredContent as { network: { allow_cidrs: string[] } }).network.allow_cidrs).toEqual([`${REMOTE}/32`]);
      const exec = await client.callTool({ name: "workspace_exec", arguments: { workspace_id: "net-mcp", command: ["bash", "-c", `${get(REMOTE_OTHER, 8080)}; true`] } });
      const notices = (exec.structuredContent as { network_notices: string[] }).network_notices;
      expect(notices.join("\n")).toContain(`workspace_network_set {"workspace_id":"net-mcp","allow_cidrs":["${REMOTE_OTHER}/32"]}`);
      expect((exec.content as { text: string }[])[0]!.text).toContain(`blocked TCP to ${REMOTE_OTHER}:8080`);
      const set = await client.callTool({ name: "workspace_network_set", arguments: { workspace_id: "net-mcp", allow_cidrs: [`${REMOTE_OTHER}/32`] } });
      expect(set.isError).toBeFalsy();
      const again = await client.callTool({ name: "workspace_exec", arguments: { workspace_id: "net-mcp", command: ["bash", "-c", get(REMOTE_OTHER, 8080)] } });
      expect((again.structuredContent as { stdout: string }).stdout).toBe(`hello from ${REMOTE_OTHER}\n`);
      const shown = await client.callTool({ name: "workspace_network_show", arguments: { workspace_id: "net-mcp" } });
      expect(shown.structuredContent).toMatchObject({ policy: "egress", applied: true, allow_cidrs: [`${REMOTE}/32`, `${REMOTE_OTHER}/32`] });
    } finally {
      await client.close();
    }
  });
});

describe("a host where slirp4netns cannot make its device", () => {
  it("refuses egress policies up front with network_unavailable, leaving nothing half-made, while the policy off works", async () => {
    // /dev/net/tun unusable for this process, whoever runs it (root could open it whatever its
    // mode, so the refusal is simulated at the open, the one place pyro asks).
    const realOpen = fs.openSync;
    const spy = vi.spyOn(fs, "openSync").mockImplementation(((file: fs.PathLike, ...rest: never[]) => {
      if (file === "/dev/net/tun") throw Object.assign(new Error("EACCES: permission denied, open '/dev/net/tun'"), { code: "EACCES" });
      return (realOpen as (file: fs.PathLike, ...rest: never[]) => number)(file, ...rest);
    }) as typeof fs.openSync);
    try {
      const before = (await pyro.listWorkspaces()).workspaces.map((w) => w.workspace_id);
      const processesBefore = findLeaks(home).processes;
      const refused = await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "net-notun", networkPolicy: "egress" }).then(
        () => null,
        (err: unknown) => err as { code?: string; message: string; hint?: string },
      );
      expect(refused).toMatchObject({ code: "network_unavailable" });
      expect(refused!.message).toContain("/dev/net/tun is not accessible to this user");
      expect(refused!.hint).toContain("sudo chmod 0666 /dev/net/tun");
      expect(refused!.hint).toContain("udev");
      // Nothing half-made: no workspace, and no helper or sandbox of it.
      expect((await pyro.listWorkspaces()).workspaces.map((w) => w.workspace_id)).toEqual(before);
      expect(findLeaks(home).processes.filter((p) => !processesBefore.includes(p))).toEqual([]);

      // The policy off needs no device.
      await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "net-notun" });
      const off = await pyro.execWorkspace("net-notun", { command: bash(`${get(REMOTE, 8080)}; echo "remote=$?"`) });
      expect(off.stdout).toBe("remote=1\n");
      expect(off.network_notices.join("\n")).toContain(`TCP to ${REMOTE}:8080`);
      // Turning egress on is refused before anything changes: the workspace stays as it was.
      await expect(pyro.setWorkspaceNetwork("net-notun", { networkPolicy: "egress" })).rejects.toMatchObject({ code: "network_unavailable" });
      expect(await pyro.showWorkspaceNetwork("net-notun")).toMatchObject({ policy: "off", applied: true, helpers: { slirp4netns_pid: null } });
      expect((await pyro.execWorkspace("net-notun", { command: bash(`${get(REMOTE, 8080)}; echo "remote=$?"`) })).stdout).toBe("remote=1\n");
      // A stopped workspace takes the policy, and its start is refused, leaving it stopped.
      await pyro.stopWorkspace("net-notun");
      await pyro.setWorkspaceNetwork("net-notun", { networkPolicy: "egress" });
      await expect(pyro.startWorkspace("net-notun")).rejects.toMatchObject({ code: "network_unavailable" });
      expect((await pyro.statusWorkspace("net-notun")).state).toBe("stopped");
      expect(findLeaks(home).processes.filter((p) => !processesBefore.includes(p))).toEqual([]);
      await pyro.setWorkspaceNetwork("net-notun", { networkPolicy: "off" });
      expect((await pyro.startWorkspace("net-notun")).state).toBe("running");
    } finally {
      spy.mockRestore();
    }
    await pyro.deleteWorkspace("net-notun");
  });
});

describe("helper processes", () => {
  it("never outlive their workspace: not after delete, not after the sandbox is killed", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "net-crash", networkPolicy: "egress+published-ports", allowHosts: ["allowed.pyro.test"] });
    await pyro.startService("net-crash", "web", { command: "sleep 1000", publish: [8000] });
    const before = await pyro.showWorkspaceNetwork("net-crash");
    const { slirp4netns_pid: slirp, dns_forwarder_pid: forwarder } = before.helpers;
    expect(alive(slirp) && alive(forwarder)).toBe(true);
    const hostPortOfWeb = before.published_ports[0]!.host_port;

    // kill -9 the sandbox's init, as a crash would.
    const record = JSON.parse(fs.readFileSync(`${home}/workspaces/${before.workspace_id}/workspace.json`, "utf8")) as { sandbox: { sandboxPid: number; pid: number } };
    process.kill(record.sandbox.sandboxPid, "SIGKILL");
    // Wait until the launcher has noticed (the sandbox is then visibly dead), as a later call would.
    for (let i = 0; i < 200 && alive(record.sandbox.pid); i++) await new Promise((r) => setTimeout(r, 10));
    const status = await pyro.statusWorkspace("net-crash");
    expect(status.state).toBe("failed");
    expect(status.network.published_ports).toEqual([]);
    expect([alive(slirp), alive(forwarder)]).toEqual([false, false]);
    expect(await hostGet(hostPortOfWeb)).toBe("error ECONNREFUSED");

    // Started again, it gets fresh helpers; deleting it ends them.
    await pyro.startWorkspace("net-crash");
    const again = (await pyro.showWorkspaceNetwork("net-crash")).helpers;
    expect(alive(again.slirp4netns_pid) && alive(again.dns_forwarder_pid)).toBe(true);
    await pyro.deleteWorkspace("net-crash");
    expect([alive(again.slirp4netns_pid), alive(again.dns_forwarder_pid)]).toEqual([false, false]);
    expect(findLeaks(home).processes.filter((p) => p.includes(before.workspace_id))).toEqual([]);
  });

  it("leave by themselves when the sandbox dies, even before anyone looks", async () => {
    await pyro.createWorkspace({ environment: TEST_ENVIRONMENT, name: "net-orphan", networkPolicy: "egress", allowHosts: ["allowed.pyro.test"] });
    const { workspace_id, helpers } = await pyro.showWorkspaceNetwork("net-orphan");
    const record = JSON.parse(fs.readFileSync(`${home}/workspaces/${workspace_id}/workspace.json`, "utf8")) as { sandbox: { sandboxPid: number } };
    process.kill(record.sandbox.sandboxPid, "SIGKILL");
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && (alive(helpers.slirp4netns_pid) || alive(helpers.dns_forwarder_pid))) await new Promise((r) => setTimeout(r, 50));
    expect([alive(helpers.slirp4netns_pid), alive(helpers.dns_forwarder_pid)]).toEqual([false, false]);
    await pyro.deleteWorkspace("net-orphan");
  });
});
