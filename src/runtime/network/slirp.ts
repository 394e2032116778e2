/**
 * slirp4netns, a sandbox's way out: started attached to the sandbox's network namespace, then
 * driven through its API socket to publish guest ports on the host's 127.0.0.1. Published
 * ports exist only under the egress+published-ports policy. Host-side.
 */
import fs from "node:fs";
import net from "node:net";
import type { HelperProcess, NetworkSpec, PublishedPort, SandboxNetwork } from "./types.js";
import { nsenterUserArgs } from "./enter.js";
import { HELPER_PERL, helperAlive, startHelper } from "./helpers.js";
import { TAP_DEVICE } from "./nft-rules.js";
import { namespaceFds, requireTools } from "./netns.js";
import type { NetworkContext, SandboxNamespaces } from "./netns.js";
import { PyroError } from "../../shared/errors.js";

/**
 * slirp4netns, attached to the sandbox's network namespace (fd 3), leaving when the sandbox dies
 * (--exit-fd, a pidfd). When pyro is not root it runs inside the sandbox's user namespace
 * (`nsenter --user` on fd 4, staying in the host's network namespace, where its connections
 * are made): there it is root, can enter the network namespace, and its --enable-sandbox can
 * make the mount namespace it confines itself to and drop its capabilities. (Its own
 * --userns-path is no substitute: slirp4netns 1.2 joins that namespace only in the child that
 * makes the TAP device, and its sandbox then fails in the parent, unprivileged.)
 */
export async function startSlirp(ctx: NetworkContext, spec: NetworkSpec, ns: SandboxNamespaces): Promise<HelperProcess & { apiSocket: string }> {
  const tools = requireTools(["perl", "slirp4netns", "nsenter"], "egress");
  fs.rmSync(ctx.apiSocket, { force: true });
  const fds = namespaceFds(ns);
  const readyFd = 3 + fds.length;
  const argv = [
    tools.perl, "-e", HELPER_PERL, "slirp", String(ctx.target.sandboxPid), String(ctx.target.sandboxStartTime), "--",
    ...(ns.user === null ? [] : [tools.nsenter, ...nsenterUserArgs(), "--"]),
    tools.slirp4netns, "--configure", "--mtu=65520",
    ...(spec.allowHostLoopback ? [] : ["--disable-host-loopback"]),
    "--api-socket", ctx.apiSocket,
    "--enable-sandbox", "--enable-seccomp",
    "--exit-fd={PIDFD}", `--ready-fd=${readyFd}`,
    "--netns-type=path", "/proc/self/fd/3", TAP_DEVICE,
  ];
  const h = await startHelper(argv, fds, readyFd, ctx.target, ctx.log, "slirp4netns");
  return { pid: h.pid, startTime: h.startTime, apiSocket: ctx.apiSocket };
}

async function slirpApi(apiSocket: string, request: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(apiSocket);
    let data = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new PyroError("network_unavailable", "slirp4netns did not answer on its API socket"));
    }, 5000);
    sock.on("error", (err) => {
      clearTimeout(timer);
      reject(new PyroError("network_unavailable", `slirp4netns API: ${err.message}`));
    });
    sock.on("connect", () => sock.write(JSON.stringify(request)));
    sock.on("data", (d: Buffer) => {
      data += d.toString();
      try {
        const parsed = JSON.parse(data) as Record<string, unknown>;
        clearTimeout(timer);
        sock.end();
        resolve(parsed);
      } catch {
        // wait for the rest
      }
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen({ port: 0, host: "127.0.0.1", exclusive: true }, () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export async function addForward(apiSocket: string, guestPort: number, hostPort: number): Promise<number | null> {
  const r = await slirpApi(apiSocket, { execute: "add_hostfwd", arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: hostPort, guest_port: guestPort } });
  const id = (r.return as { id?: unknown } | undefined)?.id;
  return typeof id === "number" ? id : null;
}

export async function publish(network: SandboxNetwork, service: string, guestPort: number, hostPort: number | null): Promise<PublishedPort> {
  if (network.spec.policy !== "egress+published-ports" || !network.slirp) {
    throw new PyroError("publish_not_allowed", `the workspace's network policy is ${network.spec.policy}; published ports need egress+published-ports`);
  }
  const apiSocket = network.slirp.apiSocket;
  for (let attempt = 0; attempt < (hostPort === null ? 5 : 1); attempt++) {
    const port = hostPort ?? (await freePort());
    const id = await addForward(apiSocket, guestPort, port);
    if (id !== null) return { service, guest_port: guestPort, host_address: "127.0.0.1", host_port: port, forward_id: id };
    if (hostPort !== null) {
      if (!(await portFree(hostPort))) {
        throw new PyroError("port_in_use", `host port 127.0.0.1:${hostPort} is already in use`, {
          details: { host_port: hostPort, guest_port: guestPort },
          hint: `Choose another host port (--publish ${guestPort}:OTHER), or leave it out (--publish ${guestPort}) to get a free one.`,
        });
      }
      throw new PyroError("network_unavailable", `slirp4netns could not forward 127.0.0.1:${hostPort} to guest port ${guestPort}`);
    }
  }
  throw new PyroError("network_unavailable", `could not find a free host port to publish guest port ${guestPort}`);
}

export async function unpublish(network: SandboxNetwork, port: PublishedPort): Promise<void> {
  if (!helperAlive(network.slirp)) return;
  await slirpApi(network.slirp!.apiSocket, { execute: "remove_hostfwd", arguments: { id: port.forward_id } }).catch(() => undefined);
}
