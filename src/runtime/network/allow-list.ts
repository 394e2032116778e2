/**
 * Allow-list entries: host names (exact, or `*.suffix` wildcards) and IPv4 CIDRs. Parsing,
 * normalising and matching, shared by the policy validation on the host and the DNS forwarder
 * that enforces names. Pure; no I/O.
 */

/** At most this many entries per list: each CIDR becomes an nft set element, each name a pattern. */
export const MAX_ALLOW_ENTRIES = 256;

const LABEL_RE = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * A host pattern in canonical form (lower case, no trailing dot), or an error message.
 * `example.org` matches exactly that name; `*.example.org` matches every name below it but not
 * `example.org` itself — the convention of browsers' and most proxies' allow-lists.
 */
export function normalizeHostPattern(input: string): { pattern: string } | { error: string } {
  if (typeof input !== "string") return { error: "a host must be a string" };
  let name = input.trim().toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  const wildcard = name.startsWith("*.");
  const rest = wildcard ? name.slice(2) : name;
  if (rest.length === 0 || rest.length > 253) return { error: `${JSON.stringify(input.slice(0, 80))} is not a host name` };
  if (rest.includes("*")) return { error: `${JSON.stringify(input.slice(0, 80))}: a wildcard is only allowed as a leading "*."` };
  if (/^[0-9.]+$/.test(rest)) return { error: `${JSON.stringify(input)} is an address, not a name: use --allow-cidr ${rest}/32 (MCP: allow_cidrs)` };
  const labels = rest.split(".");
  if (!labels.every((l) => LABEL_RE.test(l))) return { error: `${JSON.stringify(input.slice(0, 80))} is not a valid host name` };
  if (wildcard && labels.length < 2) return { error: `${JSON.stringify(input)} is too broad: a wildcard needs at least two labels after "*." (e.g. *.example.org)` };
  return { pattern: wildcard ? `*.${rest}` : rest };
}

/** True when a queried name (any case, trailing dot or not) is allowed by one of the patterns. */
export function hostAllowed(name: string, patterns: readonly string[]): boolean {
  let n = name.toLowerCase();
  if (n.endsWith(".")) n = n.slice(0, -1);
  for (const p of patterns) {
    if (p.startsWith("*.")) {
      if (n.endsWith(p.slice(1)) && n.length > p.length - 1) return true;
    } else if (n === p) {
      return true;
    }
  }
  return false;
}

/** Parses dotted-quad IPv4 into a 32-bit unsigned number, or null. */
export function parseIpv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/**
 * An IPv4 CIDR (or a bare address, taken as /32) in canonical form: host bits cleared, so
 * `10.1.2.3/16` becomes `10.1.0.0/16`. IPv6 is refused: workspaces have no IPv6 route out.
 */
export function normalizeCidr(input: string): { cidr: string } | { error: string } {
  if (typeof input !== "string") return { error: "a CIDR must be a string" };
  const text = input.trim();
  if (text.includes(":")) return { error: `${JSON.stringify(text.slice(0, 80))} is IPv6; workspaces reach the outside over IPv4 only` };
  const [addr, bits, extra] = text.split("/");
  const ip = parseIpv4(addr ?? "");
  const prefix = bits === undefined ? 32 : /^[0-9]{1,2}$/.test(bits) ? Number(bits) : NaN;
  if (ip === null || extra !== undefined || !(prefix >= 0 && prefix <= 32)) {
    return { error: `${JSON.stringify(text.slice(0, 80))} is not an IPv4 address or CIDR (e.g. 10.1.0.0/16)` };
  }
  const size = 2 ** (32 - prefix);
  return { cidr: `${formatIpv4(Math.floor(ip / size) * size)}/${prefix}` };
}

/** True when the address lies in the CIDR (both already valid). */
export function cidrContains(cidr: string, address: string): boolean {
  const [base, bits] = cidr.split("/");
  const ip = parseIpv4(address);
  const start = parseIpv4(base ?? "");
  if (ip === null || start === null) return false;
  const size = 2 ** (32 - Number(bits));
  return ip >= start && ip < start + size;
}
