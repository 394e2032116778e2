/**
 * Secret material on the host: stored apart from workspace metadata in `secrets.json` (mode
 * 0600, owner only), removed with the workspace, and sent to the agent at every sandbox start
 * (create, start, reset). Metadata and every result carry secret *names* only. Also builds the
 * host-side redactor for what the host itself records (command history, events, services), and
 * the boundary that redacts every result and error leaving core (`SecretBoundary`).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import { readJsonIfExists, writeJsonAtomic } from "../shared/atomic.js";
import { PyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";
import { Redactor, MIN_SECRET_LENGTH } from "../shared/redact.js";
import { looksLikeWorkspaceId } from "./ids.js";

const SECRET_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const MAX_SECRET_BYTES = 64 * 1024;

export function validateSecretName(name: string): string {
  if (!SECRET_NAME_RE.test(name)) {
    throw new PyroError("invalid_secret", `invalid secret name ${JSON.stringify(name.slice(0, 80))}`, { hint: "Secret names look like environment variables: letters, digits and '_', not starting with a digit." });
  }
  return name;
}

/** Collects literal and file-backed secrets into one map, reading files as UTF-8. */
export async function collectSecrets(literal: Record<string, string> = {}, files: Record<string, string> = {}): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(literal)) {
    validateSecretName(name);
    if (typeof value !== "string") throw new PyroError("invalid_secret", `secret ${name} must be a string`);
    out[name] = value;
  }
  for (const [name, file] of Object.entries(files)) {
    validateSecretName(name);
    if (Object.hasOwn(out, name)) {
      throw new PyroError("invalid_secret", `secret ${name} is given twice, as a value and as a file`, { hint: "Give each secret name once." });
    }
    out[name] = (await readSecretFile(hostPath(file, `the file of secret ${name}`), name)).replace(/\r?\n$/, "");
  }
  for (const [name, value] of Object.entries(out)) {
    if (Buffer.byteLength(value) > MAX_SECRET_BYTES) throw new PyroError("invalid_secret", `secret ${name} is larger than ${MAX_SECRET_BYTES} bytes`);
    if (Buffer.byteLength(value) < MIN_SECRET_LENGTH) {
      throw new PyroError("invalid_secret", `secret ${name} is shorter than ${MIN_SECRET_LENGTH} bytes, too short to redact reliably`);
    }
  }
  return out;
}

/** What a file that is not a regular file is, for the error that refuses it. */
function fileKind(st: fs.Stats): string {
  if (st.isFIFO()) return "a fifo";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
  if (st.isDirectory()) return "a directory";
  return "not a regular file";
}

/**
 * Reads one secret file, refusing anything but a regular file up to the size limit. A FIFO is
 * never opened for a blocking read (that would wait for a writer that may never come), and a
 * device is never read at all: the file is stat'ed first, then opened non-blocking and checked
 * again on the open descriptor, so a file swapped between the two is refused too.
 */
async function readSecretFile(abs: string, name: string): Promise<string> {
  const refuse = (why: string) => new PyroError("invalid_secret", `the file for secret ${name} ${why}`, { hint: "Give a regular file holding the secret's value." });
  const check = (st: fs.Stats) => {
    if (!st.isFile()) throw refuse(st.isDirectory() ? "is a directory" : `is ${fileKind(st)}, not a regular file`);
    if (st.size > MAX_SECRET_BYTES) throw refuse(`is larger than ${MAX_SECRET_BYTES} bytes`);
  };
  let handle: fsp.FileHandle | undefined;
  try {
    check(await fsp.stat(abs));
    handle = await fsp.open(abs, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
    check(await handle.stat());
    return await handle.readFile("utf8");
  } catch (err) {
    if (err instanceof PyroError) throw err;
    throw refuse(`cannot be read: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  } finally {
    await handle?.close();
  }
}

export async function saveSecrets(file: string, secrets: Record<string, string>): Promise<void> {
  await writeJsonAtomic(file, secrets, 0o600);
}

export async function loadSecrets(file: string): Promise<Record<string, string>> {
  return (await readJsonIfExists<Record<string, string>>(file)) ?? {};
}

export async function secretRedactor(file: string): Promise<Redactor> {
  return new Redactor(Object.values(await loadSecrets(file)));
}

/**
 * Normalises a per-call secret mapping into the agent's `{ ENV_VAR: SECRET_NAME }` form. Input
 * is a list of names (each exported under its own name), or `{ SECRET_NAME: ENV_VAR }`.
 */
export function secretEnvMapping(input: string[] | Record<string, string> | undefined, known: string[]): Record<string, string> {
  if (input === undefined) return {};
  const pairs: [string, string][] = Array.isArray(input) ? input.map((n) => [n, n]) : Object.entries(input);
  const out: Record<string, string> = {};
  for (const [secret, envVar] of pairs) {
    if (!known.includes(secret)) {
      throw new PyroError("secret_not_found", `the workspace has no secret named ${JSON.stringify(secret)}`, { hint: known.length ? `Known secrets: ${known.join(", ")}.` : "Secrets are given at create time with --secret / --secret-file." });
    }
    if (!SECRET_NAME_RE.test(envVar)) throw new PyroError("invalid_argument", `invalid environment variable name ${JSON.stringify(envVar)}`);
    out[envVar] = secret;
  }
  return out;
}

/** Parses CLI `--secret-env NAME[=ENV_VAR]` items into `{ SECRET_NAME: ENV_VAR }`. */
export function parseSecretEnvFlags(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq === -1) out[item] = item;
    else out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/**
 * The redaction boundary where results leave core. Every capability the composition root
 * (workspaces.ts) hands out is wrapped once by `guard`: whatever one of its methods resolves
 * to is deep-redacted for the secrets of every workspace it names (`workspace_id` anywhere in
 * it, else the workspace reference the call was given), and whatever it rejects with gets its
 * message, hint and details redacted the same way. So no operation, present or future, needs
 * its own redaction call to keep a value out of what a caller sees; results that return file
 * content carry `secrets_redacted`, which this sets when it replaced something in them.
 * Values the call itself carries as `secrets` (a create) count too, for the errors it raises
 * before its workspace exists.
 */
export class SecretBoundary {
  constructor(
    /** The secrets file of a workspace id. */
    private readonly secretsFile: (id: string) => string,
    /** Resolves a workspace reference to its id (rejects when there is none). */
    private readonly resolve: (ref: string) => Promise<string>,
  ) {}

  /** `target` with every method's result and error passing through the boundary. */
  guard<T extends object>(target: T): T {
    return new Proxy(target, {
      get: (obj, prop) => {
        const member: unknown = Reflect.get(obj, prop, obj);
        if (typeof member !== "function") return member;
        return (...args: unknown[]) => {
          const out: unknown = member.apply(obj, args);
          if (!(out instanceof Promise)) return out;
          return out.then(
            (result: unknown) => this.redactResult(result, args),
            async (err: unknown) => {
              throw await this.redactError(err, args);
            },
          );
        };
      },
    });
  }

  async redactResult<T>(result: T, args: readonly unknown[]): Promise<T> {
    const ids = new Set<string>();
    collectWorkspaceIds(result, ids, 0);
    const redactor = await this.redactorFor(ids, args, ids.size === 0);
    return redactor.redactResult(result).value;
  }

  async redactError(err: unknown, args: readonly unknown[]): Promise<unknown> {
    if (!(err instanceof Error)) return err;
    const ids = new Set<string>();
    const details = err instanceof PyroError ? err.details : undefined;
    if (typeof details?.workspace_id === "string") ids.add(details.workspace_id);
    const redactor = await this.redactorFor(ids, args, true);
    if (redactor.empty) return err;
    const shown = err instanceof PyroError ? err : new PyroError("internal_error", err.message, { cause: err });
    const r = redactor.redactResult({ message: shown.message, hint: shown.hint, details: shown.details });
    if (!r.replaced) return err;
    // A fresh error: the old one's stack and cause repeat the value.
    return new PyroError(shown.code, r.value.message, { ...(r.value.hint !== undefined ? { hint: r.value.hint } : {}), ...(r.value.details !== undefined ? { details: r.value.details } : {}) });
  }

  private async redactorFor(ids: Set<string>, args: readonly unknown[], fromArgs: boolean): Promise<Redactor> {
    const values: string[] = [];
    const first = args[0];
    if (fromArgs && typeof first === "string" && first !== "") {
      const id = await this.resolve(first).catch(() => null);
      if (id) ids.add(id);
    }
    if (isPlainRecord(first) && isPlainRecord(first.secrets)) {
      for (const v of Object.values(first.secrets)) if (typeof v === "string") values.push(v);
    }
    for (const id of ids) values.push(...Object.values(await loadSecrets(this.secretsFile(id)).catch(() => ({}))));
    return new Redactor(values);
  }
}

/** Workspace ids a result names (`workspace_id` at any depth, lists of workspaces included). */
function collectWorkspaceIds(value: unknown, ids: Set<string>, depth: number): void {
  if (depth > 6 || value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    for (const v of value) collectWorkspaceIds(v, ids, depth + 1);
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (k === "workspace_id" && typeof v === "string" && looksLikeWorkspaceId(v)) ids.add(v);
    else if (typeof v === "object") collectWorkspaceIds(v, ids, depth + 1);
  }
}

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
