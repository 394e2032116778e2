/**
 * The allow-list DNS forwarder: one host process per workspace with a name allow-list. It
 * serves DNS on sockets bound inside the sandbox's network namespace (where the sandbox's
 * firewall sends every DNS packet), answers only allowed names — asking the host's resolvers in
 * the host's namespace — and, before answering, adds the returned IPv4 addresses to the
 * sandbox's `resolved` nft set so the connection that follows is let through. Refused names are
 * appended to a journal the host turns into notices. It runs in the sandbox's cgroup, holds no
 * state worth keeping, and exits by itself within a second of the sandbox going away.
 *
 * It runs in the host's network namespace and gets its sockets from a binder: this same file
 * with `--bind`, which it starts inside the sandbox's namespaces (`nsenter`, as in enter.ts)
 * with a Node IPC channel. The binder binds UDP and TCP on the same free port of the sandbox's
 * 127.0.0.1 and sends both to the forwarder (Node passes the descriptors over the channel), then
 * exits. So no process ever has to return from the sandbox's namespace to the host's: root
 * could, an ordinary user cannot (it entered through the sandbox's user namespace).
 *
 * argv: CONFIG_JSON NETNS_FD USERNS_FD|- READY_FD (inherited; see helpers.ts `startForwarder`), or
 * `--bind` for the binder (inherits nothing but its IPC channel and the namespace descriptors).
 */
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import { spawn } from "node:child_process";
import { hostAllowed } from "./allow-list.js";
import { emptyAnswer, parseQuery, parseResponse, RCODE_NXDOMAIN, RCODE_SERVFAIL, TYPE_AAAA, TYPE_PTR } from "./dns-wire.js";

export interface ForwarderConfig {
  hosts: string[];
  upstreams: { host: string; port: number }[];
  /** JSON-lines journal of refused names; the host renames it away to read it. */
  denials: string;
  sandboxPid: number;
  sandboxStartTime: number;
  nft: string;
  nsenter: string;
  /** nsenter's options for entering the sandbox's namespaces (`enter.ts`), given fds 3 and 4. */
  enter: string[];
  table: string;
  set: string;
}

const UPSTREAM_TIMEOUT_MS = 2000;
const MAX_TCP_CONNECTIONS = 64;
const MAX_JOURNAL_BYTES = 256 * 1024;
/** Addresses allowed through names, at most; an allowed name that keeps changing cannot grow the rules without bound. */
const MAX_RESOLVED = 4096;
/** The binder's bound on finding a port free for both UDP and TCP, and on answering at all. */
const BIND_ATTEMPTS = 20;
const BIND_TIMEOUT_MS = 10_000;

/**
 * Answers an allowed name may not open: loopback, "this network", link-local (where cloud
 * metadata services live), multicast and reserved. Whoever controls an allowed name controls its
 * answers, so these are never let through by a name — only by --allow-cidr.
 */
function neverByName(address: string): boolean {
  const [a, b] = address.split(".").map(Number) as [number, number];
  return a === 0 || a === 127 || (a === 169 && b === 254) || a >= 224;
}

function startTime(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[0] === "Z" ? null : Number(rest[19]);
  } catch {
    return null;
  }
}

/**
 * The binder, inside the sandbox's namespaces: binds TCP and UDP on one free port of 127.0.0.1
 * and sends both to the forwarder, then waits for it to hang up. Nothing is sent to the port
 * before the forwarder serves it: the rules point DNS at it only once it is ready.
 */
async function bindMain(): Promise<void> {
  if (!process.send) throw new Error("the binder needs an IPC channel");
  for (let attempt = 0; attempt < BIND_ATTEMPTS; attempt++) {
    const tcp = net.createServer();
    await new Promise<void>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen({ host: "127.0.0.1", port: 0, backlog: 128 }, () => resolve());
    });
    const port = (tcp.address() as net.AddressInfo).port;
    const udp = dgram.createSocket("udp4");
    const bound = await new Promise<boolean>((resolve) => {
      udp.once("error", () => resolve(false));
      udp.bind({ address: "127.0.0.1", port }, () => resolve(true));
    });
    if (!bound) {
      tcp.close();
      try {
        udp.close();
      } catch {
        // already closed by the failed bind
      }
      continue;
    }
    // Sent one after the other: Node passes one descriptor at a time anyway.
    const send = (message: object, handle: net.Server | dgram.Socket) =>
      new Promise<void>((resolve, reject) => process.send!(message, handle, {}, (err) => (err ? reject(err) : resolve())));
    await send({ dns: "tcp", port }, tcp);
    await send({ dns: "udp", port }, udp);
    // Node closes our copies once the forwarder has acknowledged them; we leave when it hangs up.
    process.on("disconnect", () => process.exit(0));
    return;
  }
  throw new Error(`no port of the sandbox's 127.0.0.1 was free for both UDP and TCP in ${BIND_ATTEMPTS} tries`);
}

/** Starts the binder in the sandbox's namespaces and takes the sockets it bound there. */
function bindInSandbox(config: ForwarderConfig, nsFds: number[], ready: number): Promise<{ udp: dgram.Socket; tcp: net.Server }> {
  return new Promise((resolve, reject) => {
    // fds 3 (and 4): the namespaces, where config.enter expects them. The descriptors this
    // process inherited are not close-on-exec, so the binder's stdio covers every one up to the
    // readiness pipe (with stderr in the gaps): a binder holding the pipe would hold back pyro's
    // "ready" until it exits. Then the IPC channel.
    const stdio: ("ignore" | "inherit" | "ipc" | number)[] = ["ignore", "ignore", "inherit", ...nsFds];
    while (stdio.length <= ready) stdio.push(2);
    stdio.push("ipc");
    const child = spawn(config.nsenter, [...config.enter, "--", process.execPath, process.argv[1]!, "--bind"], { stdio });
    let tcp: net.Server | null = null;
    let udp: dgram.Socket | null = null;
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`binding the sandbox's DNS sockets: ${why}`));
    };
    const timer = setTimeout(() => fail(`no answer within ${BIND_TIMEOUT_MS / 1000} s`), BIND_TIMEOUT_MS);
    child.on("error", (err) => fail(err.message));
    child.on("exit", (code, signal) => fail(`the binder exited (${signal ?? `code ${code}`})`));
    child.on("message", (message: { dns?: unknown }, handle: unknown) => {
      if (message.dns === "tcp" && handle instanceof net.Server) tcp = handle;
      else if (message.dns === "udp" && handle instanceof dgram.Socket) udp = handle;
      else return fail("an unexpected message");
      if (!tcp || !udp || settled) return;
      settled = true;
      clearTimeout(timer);
      child.removeAllListeners("exit");
      child.disconnect();
      resolve({ udp, tcp });
    });
  });
}

async function main(): Promise<void> {
  const [configPath, netnsFd, usernsFd, readyFd] = process.argv.slice(2);
  const config = JSON.parse(fs.readFileSync(configPath!, "utf8")) as ForwarderConfig;
  // Every nsenter gets these as fds 3 (and 4), where config.enter expects them (enter.ts).
  const nsFds = usernsFd === "-" ? [Number(netnsFd)] : [Number(netnsFd), Number(usernsFd)];
  const ready = Number(readyFd);
  const added = new Set<string>();
  const recentDenials = new Map<string, number>();

  // Leave as soon as the sandbox is gone (the cgroup sweep would get us too, later).
  setInterval(() => {
    if (startTime(config.sandboxPid) !== config.sandboxStartTime) process.exit(0);
  }, 1000);

  /** Lets the sandbox reach these addresses; resolves once nft has them (never rejects). */
  const allow = (addresses: string[]): Promise<void> => {
    const fresh = [...new Set(addresses)].filter((a) => !added.has(a) && /^\d+\.\d+\.\d+\.\d+$/.test(a) && !neverByName(a));
    if (fresh.length === 0 || added.size + fresh.length > MAX_RESOLVED) return Promise.resolve();
    return new Promise((resolve) => {
      const child = spawn(config.nsenter, [...config.enter, "--", config.nft, "add", "element", "inet", config.table, config.set, `{ ${fresh.join(", ")} }`], {
        stdio: ["ignore", "ignore", "inherit", ...nsFds],
      });
      child.on("error", () => resolve());
      child.on("exit", (code) => {
        if (code === 0) for (const a of fresh) added.add(a);
        resolve();
      });
    });
  };

  const recordDenial = (name: string) => {
    const now = Date.now();
    if ((recentDenials.get(name) ?? 0) > now - 10_000) return;
    recentDenials.set(name, now);
    if (recentDenials.size > 1000) recentDenials.clear();
    try {
      if ((fs.statSync(config.denials, { throwIfNoEntry: false })?.size ?? 0) > MAX_JOURNAL_BYTES) return;
      fs.appendFileSync(config.denials, `${JSON.stringify({ name, at: new Date(now).toISOString() })}\n`, { mode: 0o600 });
    } catch {
      // the journal is best effort; the answer is still a refusal
    }
  };

  const askUdp = (query: Buffer, upstream: { host: string; port: number }): Promise<Buffer | null> =>
    new Promise((resolve) => {
      const sock = dgram.createSocket(net.isIPv6(upstream.host) ? "udp6" : "udp4");
      const done = (value: Buffer | null) => {
        clearTimeout(timer);
        sock.close();
        resolve(value);
      };
      const timer = setTimeout(() => done(null), UPSTREAM_TIMEOUT_MS);
      sock.on("error", () => done(null));
      sock.on("message", (msg) => done(msg));
      sock.send(query, upstream.port, upstream.host);
    });

  const askTcp = (query: Buffer, upstream: { host: string; port: number }): Promise<Buffer | null> =>
    new Promise((resolve) => {
      const sock = net.connect(upstream.port, upstream.host);
      let buf = Buffer.alloc(0);
      const done = (value: Buffer | null) => {
        clearTimeout(timer);
        sock.destroy();
        resolve(value);
      };
      const timer = setTimeout(() => done(null), UPSTREAM_TIMEOUT_MS);
      sock.on("error", () => done(null));
      sock.on("connect", () => sock.write(Buffer.concat([Buffer.from([query.length >> 8, query.length & 0xff]), query])));
      sock.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      });
    });

  /** The answer to one query from the sandbox, or null to stay silent. */
  const answer = async (query: Buffer, overTcp: boolean): Promise<Buffer | null> => {
    const q = parseQuery(query);
    if (!q) return null;
    if (!hostAllowed(q.name, config.hosts)) {
      if (q.type !== TYPE_PTR && q.name !== "") recordDenial(q.name);
      return emptyAnswer(query, q, RCODE_NXDOMAIN);
    }
    // Workspaces have no IPv6 route out: answering AAAA would only make programs try it first.
    if (q.type === TYPE_AAAA) return emptyAnswer(query, q, 0);
    const upstreamQuery = Buffer.from(query);
    const id = Math.floor(Math.random() * 65536);
    upstreamQuery.writeUInt16BE(id, 0);
    for (let round = 0; round < 2; round++) {
      for (const upstream of config.upstreams) {
        let response = overTcp ? await askTcp(upstreamQuery, upstream) : await askUdp(upstreamQuery, upstream);
        let parsed = response ? parseResponse(response) : null;
        if (parsed && parsed.truncated && !overTcp) {
          const full = await askTcp(upstreamQuery, upstream);
          const fullParsed = full ? parseResponse(full) : null;
          if (full && fullParsed) {
            response = full;
            parsed = fullParsed;
          }
        }
        if (!response || !parsed || parsed.id !== id) continue;
        await allow(parsed.addresses.map((a) => a.address));
        const out = Buffer.from(response);
        out.writeUInt16BE(q.id, 0);
        return out;
      }
    }
    return emptyAnswer(query, q, RCODE_SERVFAIL);
  };

  const { udp, tcp } = await bindInSandbox(config, nsFds, ready);
  udp.on("error", (err) => process.stderr.write(`[pyro dns] udp: ${err.message}\n`));
  udp.on("message", (msg, rinfo) => {
    answer(msg, false)
      .then((reply) => {
        if (reply) udp.send(reply, rinfo.port, rinfo.address);
      })
      .catch((err: Error) => process.stderr.write(`[pyro dns] ${err.message}\n`));
  });

  tcp.on("connection", (sock: net.Socket) => {
    let buf = Buffer.alloc(0);
    sock.setTimeout(10_000, () => sock.destroy());
    sock.on("error", () => sock.destroy());
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > 70_000) return sock.destroy();
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        answer(Buffer.from(msg), true)
          .then((reply) => {
            if (reply && !sock.destroyed) sock.write(Buffer.concat([Buffer.from([reply.length >> 8, reply.length & 0xff]), reply]));
            else if (!reply) sock.destroy();
          })
          .catch(() => sock.destroy());
      }
    });
  });
  tcp.maxConnections = MAX_TCP_CONNECTIONS;
  tcp.on("error", (err) => process.stderr.write(`[pyro dns] tcp: ${err.message}\n`));
  const address = tcp.address() as net.AddressInfo;
  fs.writeSync(ready, `${JSON.stringify({ port: address.port })}\n`);
  fs.closeSync(ready);
}

(process.argv[2] === "--bind" ? bindMain() : main()).catch((err: Error) => {
  process.stderr.write(`[pyro dns] ${err.message}\n`);
  process.exit(1);
});
