/**
 * Registry credentials and authorization, as Docker and the distribution spec define them: a
 * registry answers 401 with `WWW-Authenticate: Basic …` (send the user's credentials) or
 * `Bearer realm=…,service=…,scope=…` (fetch a token from the realm, anonymously or with the
 * credentials, and send that). Credentials come from the user's Docker configuration
 * (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): `auths` entries with a base64
 * `auth` (or `username`/`password`), and credential helpers (`credHelpers` per registry,
 * `credsStore` for all) run as `docker-credential-NAME get`. Identity tokens (`identitytoken`,
 * OAuth refresh tokens) are not supported: such an entry counts as no credentials.
 *
 * Credentials are only ever sent to the registry itself or to the token realm it names, and
 * never over plain HTTP to anything but a loopback address (or a registry the caller named
 * insecure). Nothing here logs or returns a secret in an error.
 */
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { PyroError } from "../../shared/errors.js";
import { DOCKER_HUB_REGISTRY } from "./reference.js";

export interface RegistryCredentials {
  username: string;
  password: string;
}

/** A parsed `WWW-Authenticate` challenge: its scheme (lower case) and parameters. */
export interface AuthChallenge {
  scheme: string;
  params: Record<string, string>;
}

/** Longest challenge header or token answer read; a registry's are a few hundred bytes. */
const CHALLENGE_MAX_LENGTH = 8192;
/** Registry tokens are JWTs of a few KiB at most (cloud registries' are the largest). */
const TOKEN_MAX_LENGTH = 64 * 1024;
/** A credential helper gets this long to answer, and this much output is read from it. */
const HELPER_TIMEOUT_MS = 15_000;
const HELPER_OUTPUT_MAX = 64 * 1024;
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Docker Hub's key in config.json, and the server URL its credential helpers expect. */
const DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/";
const DOCKER_HUB_ALIASES = new Set(["index.docker.io", "docker.io", DOCKER_HUB_REGISTRY]);

/**
 * Parses the first challenge of a `WWW-Authenticate` header (`Bearer realm="…",service="…"`).
 * Quoted values may contain commas and backslash escapes. Undefined when there is none.
 */
export function parseAuthChallenge(header: string | null | undefined): AuthChallenge | undefined {
  if (!header || header.length > CHALLENGE_MAX_LENGTH) return undefined;
  const scheme = /^\s*([A-Za-z][A-Za-z0-9_-]*)\s*/.exec(header);
  if (!scheme) return undefined;
  const params: Record<string, string> = {};
  let rest = header.slice(scheme[0].length);
  const pair = /^([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,\s*|$)/;
  for (let match = pair.exec(rest); match && rest.length > 0; match = pair.exec(rest)) {
    const value = match[2] !== undefined ? match[2].replace(/\\(.)/g, "$1") : (match[3] ?? "");
    params[match[1]!.toLowerCase()] = value;
    rest = rest.slice(match[0].length);
  }
  return { scheme: scheme[1]!.toLowerCase(), params };
}

/** Where the user's Docker configuration is: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG ? path.resolve(env.DOCKER_CONFIG) : path.join(env.HOME || os.homedir(), ".docker");
  return path.join(dir, "config.json");
}

interface DockerConfig {
  auths?: Record<string, { auth?: unknown; username?: unknown; password?: unknown } | undefined>;
  credHelpers?: Record<string, unknown>;
  credsStore?: unknown;
}

/**
 * The credentials the user's Docker configuration holds for `registry` (host[:port]), or
 * undefined: no file, no entry, an entry pyro cannot use, or a helper that is not installed or
 * has nothing for it. A config file that exists but is not JSON is an error: silently pulling
 * anonymously would hide the user's mistake.
 */
export async function dockerCredentials(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<RegistryCredentials | undefined> {
  const file = dockerConfigPath(env);
  let text: string;
  try {
    const stats = await fs.stat(file);
    if (!stats.isFile() || stats.size > 4 * 1024 * 1024) return undefined;
    text = await fs.readFile(file, "utf8");
  } catch {
    return undefined;
  }
  let config: DockerConfig;
  try {
    config = JSON.parse(text) as DockerConfig;
  } catch {
    throw new PyroError("image_unauthorized", `${file} is not valid JSON`, {
      hint: "Fix or remove the Docker configuration file, then pull again.",
      details: { config: file },
    });
  }
  if (typeof config !== "object" || config === null) return undefined;
  const hub = DOCKER_HUB_ALIASES.has(registry);

  const helpers = typeof config.credHelpers === "object" && config.credHelpers !== null ? config.credHelpers : {};
  const helperKey = Object.keys(helpers).find((key) => matchesRegistry(key, registry, hub));
  const helper = helperKey !== undefined ? helpers[helperKey] : config.credsStore;
  if (typeof helper === "string" && helper.length > 0) {
    const fromHelper = await runCredentialHelper(helper, hub ? DOCKER_HUB_CONFIG_KEY : registry, env);
    if (fromHelper) return fromHelper;
  }

  const auths = typeof config.auths === "object" && config.auths !== null ? config.auths : {};
  const authKey = Object.keys(auths).find((key) => matchesRegistry(key, registry, hub));
  const entry = authKey !== undefined ? auths[authKey] : undefined;
  if (!entry || typeof entry !== "object") return undefined;
  if (typeof entry.auth === "string" && entry.auth.length > 0) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof entry.username === "string" && typeof entry.password === "string" && entry.username.length > 0) {
    return { username: entry.username, password: entry.password };
  }
  return undefined;
}

/** A config key (`host:port`, `https://host/v1/`, …) names `registry` (host[:port]). */
function matchesRegistry(key: string, registry: string, hub: boolean): boolean {
  const host = key.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "").toLowerCase();
  return host === registry.toLowerCase() || (hub && DOCKER_HUB_ALIASES.has(host));
}

/**
 * `docker-credential-NAME get` with the server URL on stdin, as the Docker CLI runs it (found
 * on PATH, no shell). Undefined when the helper is not installed or knows nothing of this
 * registry ("credentials not found"); any other failure is an error naming the helper.
 */
async function runCredentialHelper(name: string, serverUrl: string, env: NodeJS.ProcessEnv): Promise<RegistryCredentials | undefined> {
  if (!HELPER_NAME.test(name)) return undefined;
  const program = `docker-credential-${name}`;
  const result = await new Promise<{ code: number | null; stdout: string; missing: boolean }>((resolve) => {
    const child = spawn(program, ["get"], { env, stdio: ["pipe", "pipe", "ignore"], timeout: HELPER_TIMEOUT_MS });
    let stdout = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      if (stdout.length < HELPER_OUTPUT_MAX) stdout += chunk;
    });
    child.on("error", (err: NodeJS.ErrnoException) => resolve({ code: null, stdout: "", missing: err.code === "ENOENT" }));
    child.on("close", (code) => resolve({ code, stdout, missing: false }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(serverUrl);
  });
  if (result.missing) return undefined;
  if (result.code !== 0) {
    if (/credentials not found/i.test(result.stdout)) return undefined;
    throw new PyroError("image_unauthorized", `credential helper ${program} failed for ${serverUrl}`, {
      hint: `Check that \`${program} get\` works for this registry, or remove it from the Docker configuration.`,
      details: { helper: program, exit_code: result.code },
    });
  }
  try {
    const answer = JSON.parse(result.stdout) as { Username?: unknown; Secret?: unknown };
    if (typeof answer.Username === "string" && typeof answer.Secret === "string" && answer.Username !== "<token>") {
      return { username: answer.Username, password: answer.Secret };
    }
  } catch {
    // fall through: an answer we cannot read counts as none
  }
  return undefined;
}

/** The `Authorization` value for Basic credentials. */
export function basicAuthorization(credentials: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, "utf8").toString("base64")}`;
}

/**
 * The token-request URL for a Bearer challenge: the realm with `service` and `scope` added
 * (the registry's scope if it named one, else ours). Undefined when the challenge has no
 * usable realm.
 */
export function tokenRequestUrl(challenge: AuthChallenge, scope: string): URL | undefined {
  let realm: URL;
  try {
    realm = new URL(challenge.params.realm ?? "");
  } catch {
    return undefined;
  }
  if (realm.protocol !== "https:" && realm.protocol !== "http:") return undefined;
  if (challenge.params.service) realm.searchParams.set("service", challenge.params.service);
  realm.searchParams.set("scope", challenge.params.scope || scope);
  return realm;
}

/** Reads a token server's answer: `token` (Docker) or `access_token` (OAuth2 style). */
export function tokenFromAnswer(text: string): string | undefined {
  try {
    const answer = JSON.parse(text) as { token?: unknown; access_token?: unknown };
    const token = typeof answer.token === "string" && answer.token ? answer.token : answer.access_token;
    return typeof token === "string" && token.length > 0 && token.length <= TOKEN_MAX_LENGTH && !/[\r\n]/.test(token) ? token : undefined;
  } catch {
    return undefined;
  }
}
