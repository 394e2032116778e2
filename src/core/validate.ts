/**
 * Validation of user input shared by every surface, so the CLI, SDK and MCP server refuse the
 * same things with the same codes. Pure.
 */
import { PyroError } from "../shared/errors.js";

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
