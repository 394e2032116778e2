/**
 * Image references (`ghcr.io/org/img:tag`, `127.0.0.1:5000/x/y@sha256:…`) and the rule that
 * tells them apart from pyro's catalog names: an image reference always has a registry or
 * namespace part, i.e. a `/`; a catalog or imported environment name (`debian:12`,
 * `myorg:ubuntu-24.04`) never does. Pure; no I/O.
 *
 * The grammar is the one Docker and the distribution project use (`distribution/reference`),
 * restricted where pyro is stricter: only `sha256` digests, and bounded lengths so a hostile
 * reference cannot blow up an error message, a file name or a URL.
 */
import { PyroError } from "../../shared/errors.js";

/** Docker Hub as users write it, and the host that actually serves its API. */
export const DOCKER_HUB = "docker.io";
export const DOCKER_HUB_REGISTRY = "registry-1.docker.io";

/** A whole reference longer than this is refused before any parsing (no regex on megabytes). */
export const REFERENCE_MAX_LENGTH = 512;
/** distribution/reference's limit on the repository name including the registry host. */
const NAME_MAX_LENGTH = 255;

export interface ImageReference {
  /** The host (and port) whose API is spoken: `registry-1.docker.io` for Docker Hub. */
  registry: string;
  /** The repository path inside the registry; Docker Hub's official images get `library/`. */
  repository: string;
  /** The tag, `latest` when neither tag nor digest was given; null for a digest-only reference. */
  tag: string | null;
  /** `sha256:<64 hex>` when the reference pins one; it then wins over the tag. */
  digest: string | null;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST_LABEL = /^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])$/;
const IPV6_HOST = /^\[[0-9A-Fa-f:.]+\]$/;

/**
 * Whether `name` is meant as an image reference rather than a catalog or imported environment
 * name. Only the shape is looked at (a `/`): `parseImageReference` then says whether it is a
 * valid one, so `docker.io/Bad Name` is an invalid image, not an unknown environment.
 */
export function isImageReference(name: string): boolean {
  return name.includes("/");
}

/** A sha256 digest as `sha256:<64 lower-case hex>`. */
export function isSha256Digest(value: unknown): value is string {
  return typeof value === "string" && DIGEST.test(value);
}

/**
 * Parses an image reference; throws `invalid_argument` naming what is wrong. Docker Hub
 * names are normalised (`docker.io/node` → registry `registry-1.docker.io`, repository
 * `library/node`), and a reference with neither tag nor digest means the tag `latest`.
 */
export function parseImageReference(input: string): ImageReference {
  if (typeof input !== "string" || input.length === 0) throw invalidReference(String(input), "it is empty");
  if (input.length > REFERENCE_MAX_LENGTH) throw invalidReference(input, `it is longer than ${REFERENCE_MAX_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex -- the point is to refuse control characters
  if (/[\s\u0000-\u001f\u007f]/.test(input)) throw invalidReference(input, "it contains whitespace or control characters");

  let rest = input;
  let digest: string | null = null;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalidReference(input, "the digest is not sha256: followed by 64 lower-case hex digits");
  }

  // A tag is after the last ':' that comes after the last '/', so a registry port is not one.
  let tag: string | null = null;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.indexOf(":", lastSlash + 1);
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalidReference(input, "the tag must be 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'");
  }

  if (rest.length > NAME_MAX_LENGTH) throw invalidReference(input, `the name is longer than ${NAME_MAX_LENGTH} characters`);
  const parts = rest.split("/");
  let registry = DOCKER_HUB;
  // The first part is a registry host when it could not be a repository component: it has a
  // '.' or ':' or is `localhost` (or has upper case, which repositories never do).
  if (parts.length > 1 && /[.:]|^localhost$|[A-Z]/.test(parts[0]!)) {
    registry = parts.shift()!;
    checkRegistryHost(input, registry);
  }
  for (const part of parts) {
    if (!COMPONENT.test(part)) {
      throw invalidReference(input, `${JSON.stringify(part)} is not a valid repository component (lower-case letters and digits, separated by '.', '_', '__' or '-')`);
    }
  }
  let repository = parts.join("/");
  if (registry === DOCKER_HUB || registry === "index.docker.io" || registry === DOCKER_HUB_REGISTRY) {
    registry = DOCKER_HUB_REGISTRY;
    if (parts.length === 1) repository = `library/${repository}`;
  }
  if (tag === null && digest === null) tag = "latest";
  return { registry, repository, tag, digest };
}

function checkRegistryHost(input: string, registry: string): void {
  let host = registry;
  let port: string | undefined;
  if (registry.startsWith("[")) {
    const close = registry.indexOf("]");
    host = registry.slice(0, close + 1);
    const after = close === -1 ? "" : registry.slice(close + 1);
    if (close === -1 || !IPV6_HOST.test(host) || (after !== "" && !after.startsWith(":"))) {
      throw invalidReference(input, `${JSON.stringify(registry)} is not a valid registry host[:port]`);
    }
    if (after !== "") port = after.slice(1);
  } else {
    const colon = registry.indexOf(":");
    if (colon !== -1) {
      host = registry.slice(0, colon);
      port = registry.slice(colon + 1);
    }
    if (host.length === 0 || host.length > 253 || !host.split(".").every((label) => HOST_LABEL.test(label))) {
      throw invalidReference(input, `${JSON.stringify(registry)} is not a valid registry host[:port]`);
    }
  }
  if (port !== undefined) checkPort(input, port);
}

function checkPort(input: string, port: string): void {
  const value = Number(port);
  if (!/^[0-9]{1,5}$/.test(port) || value < 1 || value > 65535) throw invalidReference(input, "the registry port must be 1-65535");
}

/** The canonical form shown to users and used as the image's name in the store. */
export function formatImageReference(ref: ImageReference): string {
  const registry = ref.registry === DOCKER_HUB_REGISTRY ? DOCKER_HUB : ref.registry;
  return `${registry}/${ref.repository}${ref.tag !== null ? `:${ref.tag}` : ""}${ref.digest !== null ? `@${ref.digest}` : ""}`;
}

/** The registry host without its port, brackets removed from an IPv6 literal. */
export function registryHostname(registry: string): string {
  if (registry.startsWith("[")) return registry.slice(1, registry.indexOf("]"));
  return registry.replace(/:[0-9]+$/, "");
}

/**
 * Whether a registry (host[:port]) is on this machine's loopback: `localhost`, 127.0.0.0/8 or
 * ::1. Only those are spoken to over plain HTTP without the caller naming them insecure.
 */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registryHostname(registry).toLowerCase();
  if (host === "localhost" || host === "::1" || host === "0:0:0:0:0:0:0:1") return true;
  const octets = host.split(".");
  return octets.length === 4 && octets[0] === "127" && octets.every((o) => /^[0-9]{1,3}$/.test(o) && Number(o) <= 255);
}

/**
 * For a bare `name:tag` that is not an environment (`node:22`): the full image reference the
 * user probably meant (`docker.io/library/node:22`), or undefined when it would not be one.
 * For the hint of `environment_unknown`.
 */
export function suggestedImageReference(name: string): string | undefined {
  if (isImageReference(name)) return undefined;
  try {
    const ref = parseImageReference(`${DOCKER_HUB}/library/${name}`);
    return formatImageReference(ref);
  } catch {
    return undefined;
  }
}

function invalidReference(input: string, reason: string): PyroError {
  // Quoted and cut: the reference may be hostile or huge, the message stays one short line.
  const shown = JSON.stringify(input.length > 80 ? `${input.slice(0, 80)}…` : input);
  return new PyroError("invalid_argument", `${shown} is not a valid image reference: ${reason}`, {
    hint: "Write an image reference as REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST], e.g. docker.io/library/node:22 or ghcr.io/org/image:1.0.",
  });
}
