/**
 * Validation of user input shared by every surface, so the CLI, SDK and MCP server refuse the
 * same things with the same codes. Pure.
 */
import { PyroError } from "../shared/errors.js";
import { MAX_HEADER_BYTES } from "../protocol/frames.js";
import { looksLikeWorkspaceId } from "./ids.js";

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
const MAX_LABEL_VALUE = 256;
const MAX_LABELS = 64;

export function validateName(name: string, what = "workspace name"): string {
  if (typeof name !== "string" || !NAME_RE.test(name)) {
    throw new PyroError("invalid_name", `invalid ${what} ${JSON.stringify(String(name).slice(0, 80))}`, {
      hint: "Use 1-63 characters: letters, digits, '.', '_' or '-', starting with a letter or digit.",
    });
  }
  return name;
}

/**
 * A workspace's name: a valid name that no workspace id could ever be. Workspaces are found by
 * id or name with one reference, so a name shaped like an id (12 characters of the id alphabet)
 * could point at two workspaces; refused whether or not such an id exists yet.
 */
export function validateWorkspaceName(name: string): string {
  validateName(name);
  if (looksLikeWorkspaceId(name)) {
    throw new PyroError("invalid_name", `the workspace name ${JSON.stringify(name)} is shaped like a workspace id, so references to it would be ambiguous`, {
      hint: "Choose a name that is not 12 lowercase letters and digits, e.g. add a '-'.",
    });
  }
  return name;
}

export function validateLabels(labels: Record<string, string>): Record<string, string> {
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) throw new PyroError("invalid_label", `at most ${MAX_LABELS} labels`);
  for (const [key, value] of entries) {
    if (!LABEL_KEY_RE.test(key)) {
      throw new PyroError("invalid_label", `invalid label key ${JSON.stringify(key.slice(0, 80))}`, {
        hint: "Label keys are 1-63 characters of letters, digits, '.', '_', '/' or '-', starting with a letter or digit.",
      });
    }
    if (typeof value !== "string" || value.length > MAX_LABEL_VALUE || /[\0\n]/.test(value)) {
      throw new PyroError("invalid_label", `invalid value for label ${key}`, { hint: `Label values are single-line strings up to ${MAX_LABEL_VALUE} characters.` });
    }
  }
  return labels;
}

/** Parses `KEY=VALUE` strings (CLI --label / --env) into a record. */
export function parseKeyValues(items: string[], what: "label" | "env"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) {
      throw new PyroError(what === "label" ? "invalid_label" : "invalid_argument", `expected KEY=VALUE, got ${JSON.stringify(item.slice(0, 80))}`, {
        hint: what === "label" ? "Pass labels as --label key=value." : "Pass environment variables as --env KEY=VALUE.",
      });
    }
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function validateEnv(env: Record<string, string>): Record<string, string> {
  for (const [key, value] of Object.entries(env)) {
    if (!ENV_KEY_RE.test(key)) throw new PyroError("invalid_argument", `invalid environment variable name ${JSON.stringify(key.slice(0, 80))}`);
    if (typeof value !== "string" || value.includes("\0")) throw new PyroError("invalid_argument", `invalid value for environment variable ${key}`);
  }
  return env;
}

/**
 * The most a command line (argv or shell string), its environment and its cwd may take together,
 * as sent to the agent. They travel in one frame header, which the protocol caps at
 * MAX_HEADER_BYTES; half of that leaves room for the rest of the header (limits, the guest's
 * PATH and HOME, secret names) and for JSON escaping, so a command under this limit always fits.
 */
export const MAX_COMMAND_BYTES = MAX_HEADER_BYTES / 2;
/** The kernel refuses any one argument or environment entry longer than this (MAX_ARG_STRLEN). */
export const MAX_COMMAND_STRING_BYTES = 128 * 1024;

/**
 * Refuses a command, environment and cwd too large to send or to start, before anything is sent:
 * otherwise the request fails deep in the framing (or in execve) with an error that names neither.
 */
export function validateCommandSize(parts: { command: string[]; env: Record<string, string>; cwd: string }): void {
  for (const value of [...parts.command.map(String), ...Object.entries(parts.env).map(([k, v]) => `${k}=${v}`)]) {
    if (Buffer.byteLength(value) >= MAX_COMMAND_STRING_BYTES) {
      throw new PyroError("invalid_argument", `an argument or environment entry is ${Buffer.byteLength(value)} bytes; the limit for one is ${MAX_COMMAND_STRING_BYTES - 1} bytes`, {
        hint: "Put large data in a file (workspace file write, sync push) or pass it on stdin.",
      });
    }
  }
  const total = Buffer.byteLength(JSON.stringify([parts.command, parts.env, parts.cwd]));
  if (total > MAX_COMMAND_BYTES) {
    throw new PyroError("invalid_argument", `the command, its environment and cwd take ${total} bytes; the limit is ${MAX_COMMAND_BYTES} bytes`, {
      hint: "Put large data in a file (workspace file write, sync push) or pass it on stdin.",
    });
  }
}

export function validatePositive(value: number, what: string, max: number, code: "invalid_argument" | "invalid_timeout" = "invalid_argument"): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > max) {
    throw new PyroError(code, `${what} must be a positive number no larger than ${max}, got ${String(value)}`);
  }
  return value;
}

export function validatePositiveInt(value: number, what: string, max: number): number {
  validatePositive(value, what, max);
  if (!Number.isInteger(value)) throw new PyroError("invalid_argument", `${what} must be a whole number, got ${value}`);
  return value;
}
