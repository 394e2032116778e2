/**
 * Secret material on the host: stored apart from workspace metadata in `secrets.json` (mode
 * 0600, owner only), removed with the workspace, and sent to the agent at every sandbox start
 * (create, start, reset). Metadata and every result carry secret *names* only. Also builds the
 * host-side redactor for what the host itself records (command history, errors).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import { readJsonIfExists, writeJsonAtomic } from "../shared/atomic.js";
import { PyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";
import { Redactor, MIN_SECRET_LENGTH } from "../shared/redact.js";

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
