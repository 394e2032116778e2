/**
 * The pure parts of network policy: allow-list entries (names, wildcards, CIDRs), policy changes,
 * published-port syntax, the notices a model reads, the DNS wire format the forwarder relies on,
 * and the nftables rules — every combination of which must load in a real kernel (checked with
 * `nft -c` inside a throwaway network namespace, never the host's).
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { cidrContains, hostAllowed, normalizeCidr, normalizeHostPattern } from "../../src/runtime/network/allow-list.js";
import { applyChange, networkFromOptions, noticesFor, parsePublish } from "../../src/core/network.js";
import { buildAResponse, buildQuery, emptyAnswer, parseQuery, parseResponse, RCODE_NXDOMAIN, TYPE_A, TYPE_AAAA } from "../../src/runtime/network/dns-wire.js";
import { renderRuleset } from "../../src/runtime/network/nft-rules.js";
import { PyroError } from "../../src/shared/errors.js";
import { findExecutable } from "../../src/shared/executables.js";

describe("allow-list entries", () => {
  it("normalises names and wildcards, and refuses what is not a name", () => {
    expect(normalizeHostPattern("Example.ORG.")).toEqual({ pattern: "example.org" });
    expect(normalizeHostPattern("*.pythonhosted.org")).toEqual({ pattern: "*.pythonhosted.org" });
    for (const bad of ["", "*", "*.org", "a.*.org", "exa mple.org", "10.0.0.1", "-bad.org", "x".repeat(64) + ".org"]) {
      expect(normalizeHostPattern(bad), bad).toHaveProperty("error");
    }
  });

  it("matches an exact name exactly, and a wildcard every name below it but not the name itself", () => {
    const patterns = ["pypi.org", "*.pythonhosted.org"];
    expect(hostAllowed("PyPI.org.", patterns)).toBe(true);
    expect(hostAllowed("www.pypi.org", patterns)).toBe(false);
    expect(hostAllowed("files.pythonhosted.org", patterns)).toBe(true);
    expect(hostAllowed("a.b.pythonhosted.org", patterns)).toBe(true);
    expect(hostAllowed("pythonhosted.org", patterns)).toBe(false);
    expect(hostAllowed("evilpythonhosted.org", patterns)).toBe(false);
  });

  it("canonicalises IPv4 CIDRs and bare addresses, and refuses IPv6 and nonsense", () => {
    expect(normalizeCidr("10.1.2.3/16")).toEqual({ cidr: "10.1.0.0/16" });
    expect(normalizeCidr("203.0.113.7")).toEqual({ cidr: "203.0.113.7/32" });
    expect(normalizeCidr("0.0.0.0/0")).toEqual({ cidr: "0.0.0.0/0" });
    for (const bad of ["2001:db8::/32", "10.1/16", "10.0.0.256", "10.0.0.1/33", "010.0.0.1", "a.b.c.d"]) expect(normalizeCidr(bad), bad).toHaveProperty("error");
    expect(cidrContains("10.1.0.0/16", "10.1.255.9")).toBe(true);
    expect(cidrContains("10.1.0.0/16", "10.2.0.1")).toBe(false);
  });
});

describe("policy options", () => {
  it("defaults to off, and refuses allow entries that could not take effect under off", () => {
    expect(networkFromOptions({})).toEqual({ policy: "off", config: { allow_hosts: [], allow_cidrs: [], allow_host_loopback: false } });
    expect(() => networkFromOptions({ allowHosts: ["example.org"] })).toThrow(expect.objectContaining({ code: "invalid_argument" }));
    expect(() => networkFromOptions({ networkPolicy: "open" })).toThrow(PyroError);
  });

  it("adds to the allow-list on a change, empties it on clear, and keeps it dormant when the policy goes off", () => {
    const start = networkFromOptions({ networkPolicy: "egress", allowHosts: ["b.org"], allowCidrs: ["10.0.0.0/8"] });
    const added = applyChange(start, { allowHosts: ["a.org", "b.org"] });
    expect(added.config.allow_hosts).toEqual(["a.org", "b.org"]);
    expect(added.config.allow_cidrs).toEqual(["10.0.0.0/8"]);
    expect(applyChange(added, { clearAllowList: true, allowCidrs: ["192.0.2.1"] }).config).toEqual({ allow_hosts: [], allow_cidrs: ["192.0.2.1/32"], allow_host_loopback: false });
    const off = applyChange(added, { networkPolicy: "off" });
    expect(off.policy).toBe("off");
    expect(off.config.allow_hosts).toEqual(["a.org", "b.org"]);
    expect(() => applyChange(off, { allowHostLoopback: true })).toThrow(expect.objectContaining({ code: "invalid_argument" }));
  });

  it("reads every --publish form and refuses a host port given twice", () => {
    expect(parsePublish([8000, "8001", "8002:18002", { guestPort: 9000 }, { guest_port: 9001, host_port: 19001 }])).toEqual([
      { guestPort: 8000, hostPort: null },
      { guestPort: 8001, hostPort: null },
      { guestPort: 8002, hostPort: 18002 },
      { guestPort: 9000, hostPort: null },
      { guestPort: 9001, hostPort: 19001 },
    ]);
    for (const bad of [["0"], ["70000"], ["80:"], ["a:b"], [{ hostPort: 1 }]]) expect(() => parsePublish(bad), JSON.stringify(bad)).toThrow(PyroError);
    expect(() => parsePublish(["1:5000", "2:5000"])).toThrow(/twice/);
  });
});

describe("network notices", () => {
  it("say what was blocked and give the exact CLI command and MCP call that allows it", () => {
    const [name, address, loopback] = noticesFor("fix-1", "egress", [
      { kind: "dns", name: "evil.example" },
      { kind: "connect", protocol: "tcp", address: "203.0.113.7", port: 443, host_side: false },
      { kind: "connect", protocol: "tcp", address: "10.0.2.2", port: 5432, host_side: true },
    ]);
    expect(name).toContain("refused to resolve evil.example");
    expect(name).toContain("`pyro workspace network set fix-1 --allow-host evil.example`");
    expect(name).toContain('workspace_network_set {"workspace_id":"fix-1","allow_hosts":["evil.example"]}');
    expect(address).toContain("TCP to 203.0.113.7:443");
    expect(address).toContain("--allow-cidr 203.0.113.7/32");
    expect(loopback).toContain("--allow-host-loopback");
    const off = noticesFor("ws", "off", [{ kind: "connect", protocol: "udp", address: "10.0.2.3", port: 53, host_side: false }]);
    expect(off[0]).toContain("a DNS lookup");
    expect(off[0]).toContain("--network-policy egress");
  });

  it("report each destination once and cap the list, counting the rest", () => {
    const many = Array.from({ length: 20 }, (_, i) => ({ kind: "connect" as const, protocol: "tcp" as const, address: `198.51.100.${i}`, port: 80, host_side: false }));
    const notices = noticesFor("ws", "off", [...many, ...many]);
    expect(notices).toHaveLength(6);
    expect(notices[5]).toContain("15 more blocked destinations");
  });
});

describe("DNS wire format", () => {
  it("reads a query's question and answers it with NXDOMAIN, echoing id and question", () => {
    const q = buildQuery(0x1234, "Allowed.Pyro.Test", TYPE_A);
    const question = parseQuery(q)!;
    expect(question).toMatchObject({ id: 0x1234, name: "allowed.pyro.test", type: TYPE_A, class: 1, recursionDesired: true });
    const nx = emptyAnswer(q, question, RCODE_NXDOMAIN);
    expect(parseResponse(nx)).toEqual({ id: 0x1234, rcode: RCODE_NXDOMAIN, truncated: false, addresses: [] });
    expect(parseQuery(nx)).toBeNull();
  });

  it("reads the A records of a response, through name compression", () => {
    const q = buildQuery(7, "a.test", TYPE_A);
    const r = buildAResponse(q, parseQuery(q)!, ["10.203.0.2", "10.203.0.3"], 300);
    expect(parseResponse(r)?.addresses).toEqual([
      { address: "10.203.0.2", ttl: 300 },
      { address: "10.203.0.3", ttl: 300 },
    ]);
    expect(parseResponse(buildAResponse(buildQuery(8, "a.test", TYPE_AAAA), parseQuery(buildQuery(8, "a.test", TYPE_AAAA))!, ["1.2.3.4"]))?.addresses).toEqual([]);
  });

  it("rejects malformed and hostile messages instead of reading past them", () => {
    expect(parseQuery(Buffer.alloc(5))).toBeNull();
    const loop = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
    expect(parseQuery(loop)).toBeNull();
    const q = buildQuery(9, "a.test", TYPE_A);
    const r = buildAResponse(q, parseQuery(q)!, ["1.2.3.4"]);
    expect(parseResponse(r.subarray(0, r.length - 2))).toBeNull();
  });
});

describe("the sandbox's nftables rules", () => {
  const combos = [
    { egress: false, hostAddresses: [], restricted: false, allowCidrs: [], resolved: [], dnsForwarderPort: null, published: false, allowGateway: false },
    { egress: true, hostAddresses: ["10.0.2.2", "192.0.2.2"], restricted: false, allowCidrs: [], resolved: [], dnsForwarderPort: null, published: false, allowGateway: false },
    { egress: true, hostAddresses: [], restricted: true, allowCidrs: ["10.1.0.0/16", "203.0.113.7/32"], resolved: ["10.203.0.2"], dnsForwarderPort: 41234, published: true, allowGateway: true },
    { egress: true, hostAddresses: ["10.0.2.2"], restricted: true, allowCidrs: [], resolved: [], dnsForwarderPort: 5353, published: true, allowGateway: false },
  ];

  it.each(combos.map((c, i) => [i, c] as const))("combination %i loads in a kernel (checked in a throwaway network namespace)", (_i, input) => {
    const text = renderRuleset(input);
    // An ordinary user gets a network namespace of its own inside a user namespace.
    const ns = process.getuid?.() === 0 ? ["--net"] : ["--user", "--map-root-user", "--net"];
    const r = spawnSync("unshare", [...ns, findExecutable("nft") ?? "nft", "-c", "-f", "-"], { input: text, encoding: "utf8" });
    expect({ code: r.status, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
  });

  it("denies everything but local traffic with the policy off, and records before refusing", () => {
    const text = renderRuleset(combos[0]!);
    expect(text).toMatch(/fib daddr type local accept[\s\S]*jump refuse/);
    expect(text).toMatch(/update @denied[\s\S]*reject with tcp reset/);
    expect(text).not.toContain("masquerade");
  });

  it("sends every DNS query to the forwarder when names are allow-listed", () => {
    expect(renderRuleset(combos[2]!)).toContain("th dport 53 redirect to :41234");
    expect(renderRuleset(combos[1]!)).toContain("dnat ip to 10.0.2.3");
  });
});
