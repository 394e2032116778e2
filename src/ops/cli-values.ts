/**
 * How the CLI's strings become an operation's input, without zod: the named parsers a field's CLI
 * spelling refers to (`parse: "labels"`), the adjustments some commands need (`--shell` versus an
 * argv, `--text-file`, the `--ready-*` flags), and the mapping from an operation's input to SDK
 * options. Kept apart from the declarations so `pyro --version`, `--help` and `workspace exec`
 * never load the schema library: the CLI reads its commands from a manifest built from the
 * declarations (ops/manifest.ts) and loads the catalogue itself only to run other commands.
 */
import fs from "node:fs/promises";
import { PyroError } from "../shared/errors.js";
import { hostPath } from "../shared/host-path.js";
import { parseKeyValues } from "../core/validate.js";
import { parseSecretEnvFlags } from "../core/secrets.js";

/*
 * Plain decimal only. `Number()` alone would take "0x10", " 1", "1e3" and "" (as 0): spellings
 * nobody means for a timeout or a memory size, and a typo should not become a different limit.
 * A leading '-' is read so that a negative value meets the option's own "must be positive".
 */
const INTEGER_RE = /^-?\d+$/;
const DECIMAL_RE = /^-?\d+(\.\d+)?$/;

/** The parser names whose value is a number, read by `cliNumber` when commander sees the flag. */
export type NumberParse = "number" | "integer";

export function isNumberParse(parse: string | undefined): parse is NumberParse {
  return parse === "number" || parse === "integer";
}

/**
 * A number flag's value, strictly: a plain decimal, with a fraction only where the option takes
 * one (`parse: "number"`); "", "12abc", "0x10", " 1" and "1e3" are errors naming the flag.
 */
export function cliNumber(flag: string, parse: NumberParse = "number") {
  return (value: string): number => {
    const integer = parse === "integer";
    if (!(integer ? INTEGER_RE : DECIMAL_RE).test(value)) {
      throw new PyroError("invalid_argument", `${flag} expects ${integer ? "a whole number" : "a decimal number"}, got ${JSON.stringify(value.slice(0, 80))}`, {
        hint: integer ? "Write the number in plain decimal digits, e.g. 512." : "Write the number in plain decimal digits, e.g. 30 or 2.5.",
      });
    }
    const n = Number(value);
    if (!Number.isSafeInteger(Math.trunc(n))) throw new PyroError("invalid_argument", `${flag} is out of range: ${JSON.stringify(value.slice(0, 80))}`);
    return n;
  };
}

/**
 * `NAME=VALUE` pairs for secrets; the value may contain '='. A name given twice is refused (which
 * value was meant cannot be guessed), naming the name; a value is never echoed in an error.
 */
export function secretPairs(items: string[], flag = "--secret"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new PyroError("invalid_secret", `${flag} expects NAME=${flag === "--secret-file" ? "PATH" : "VALUE"}`);
    const name = item.slice(0, eq);
    if (Object.hasOwn(out, name)) {
      throw new PyroError("invalid_secret", `secret ${JSON.stringify(name.slice(0, 80))} is given twice (${flag})`, { hint: "Give each secret name once." });
    }
    out[name] = item.slice(eq + 1);
  }
  return out;
}

/**
 * The parsers a CLI spelling names. Each gets what commander collected (a string, or a list for
 * repeatable flags) and the flag or argument as the user typed it, for error messages. Host paths
 * are checked here so an empty one is refused naming the flag; handlers check again under the MCP
 * name.
 */
export const CLI_PARSERS = {
  number: (raw: string, name: string) => cliNumber(name)(raw),
  integer: (raw: string, name: string) => cliNumber(name, "integer")(raw),
  labels: (raw: string[]) => parseKeyValues(raw, "label"),
  env: (raw: string[]) => parseKeyValues(raw, "env"),
  secretEnv: (raw: string[]) => parseSecretEnvFlags(raw),
  secretPairs: (raw: string[], name: string) => secretPairs(raw, name),
  hostPath: (raw: string, name: string) => hostPath(raw, name),
  hostPathPairs: (raw: string[], name: string) => Object.fromEntries(Object.entries(secretPairs(raw, name)).map(([key, file]) => [key, hostPath(file, `${name} ${key}`)])),
} satisfies Record<string, (raw: never, name: string) => unknown>;

export type CliParser = keyof typeof CLI_PARSERS;

/** Text from exactly one of an inline flag or a host file: `--text`/`--text-file`, `--patch`/`--patch-file`. */
export interface TextFromFile {
  key: string;
  flag: string;
  fileKey: string;
  fileFlag: string;
}

/** What a command adjusts after parsing, when its CLI spelling is not one flag per field. */
export interface CliAdjust {
  /** `command` from `--shell STRING` or the argv after `--`, exactly one of them. */
  command?: true;
  /** `readiness` from at most one of `--ready-file`, `--ready-tcp`, `--ready-http`, `--ready-command`. */
  readiness?: true;
  text?: TextFromFile;
}

export async function adjustFromCli(adjust: CliAdjust, input: Record<string, unknown>, cliOnly: Record<string, unknown>): Promise<Record<string, unknown>> {
  let out = input;
  if (adjust.command) out = commandFromCli(out, cliOnly);
  if (adjust.readiness) {
    const readiness = readinessFromCli(cliOnly);
    if (readiness) out = { ...out, readiness };
  }
  if (adjust.text) out = await textFromCli(out, cliOnly, adjust.text);
  return out;
}

/** Joins `--shell` and the argv after `--` into `command`, refusing both or neither. */
function commandFromCli(input: Record<string, unknown>, cliOnly: Record<string, unknown>): Record<string, unknown> {
  const argv = Array.isArray(input.command) ? (input.command as string[]) : [];
  const shell = cliOnly.shell as string | undefined;
  if (shell !== undefined && argv.length > 0) throw new PyroError("invalid_argument", "give either --shell STRING or `-- COMMAND ARGS…`, not both");
  if (shell === undefined && argv.length === 0) {
    throw new PyroError("invalid_argument", "no command given", { hint: "Put the command after `--`, e.g. `-- make test`, or use --shell 'make test | tail'." });
  }
  return { ...input, command: shell ?? argv };
}

/** The CLI's --ready-* flags as the one `readiness` object. */
function readinessFromCli(cliOnly: Record<string, unknown>) {
  const given = ["readyFile", "readyTcp", "readyHttp", "readyCommand"].filter((k) => cliOnly[k] !== undefined);
  if (given.length > 1) throw new PyroError("invalid_argument", "give at most one of --ready-file, --ready-tcp, --ready-http, --ready-command");
  if (cliOnly.readyFile !== undefined) return { type: "file" as const, path: cliOnly.readyFile as string };
  if (cliOnly.readyTcp !== undefined) return { type: "tcp" as const, port: cliOnly.readyTcp as number };
  if (cliOnly.readyHttp !== undefined) return { type: "http" as const, url: cliOnly.readyHttp as string };
  if (cliOnly.readyCommand !== undefined) return { type: "command" as const, command: cliOnly.readyCommand as string };
  return undefined;
}

/** The file is read by pyro as the user, like every host path. */
async function textFromCli(input: Record<string, unknown>, cliOnly: Record<string, unknown>, names: TextFromFile): Promise<Record<string, unknown>> {
  const inline = input[names.key] as string | undefined;
  const file = cliOnly[names.fileKey] as string | undefined;
  if ((inline === undefined) === (file === undefined)) throw new PyroError("invalid_argument", `give exactly one of ${names.flag} or ${names.fileFlag}`);
  if (inline !== undefined) return input;
  const abs = hostPath(file, names.fileFlag);
  try {
    return { ...input, [names.key]: await fs.readFile(abs, "utf8") };
  } catch (err) {
    throw new PyroError("invalid_argument", `cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Drops keys whose value is undefined, so SDK options carry only what was given. */
export function given<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

type ExecInput = { command: string | string[]; timeout_seconds?: number | undefined; env?: Record<string, string> | undefined; cwd?: string | undefined; stdin?: string | Uint8Array | undefined; max_output_bytes?: number | undefined; secret_env?: Record<string, string> | undefined };

/** The SDK's exec options from an operation's input. */
export function execOptions(a: ExecInput) {
  return { command: a.command, ...given({ timeoutSeconds: a.timeout_seconds, env: a.env, cwd: a.cwd, stdin: a.stdin, maxOutputBytes: a.max_output_bytes, secretEnv: a.secret_env }) };
}

type NetworkInput = { network_policy?: string | undefined; allow_hosts?: string[] | undefined; allow_cidrs?: string[] | undefined; allow_host_loopback?: boolean | undefined };

/** The SDK's network options from an operation's input. */
export function networkOptions(a: NetworkInput) {
  return given({ networkPolicy: a.network_policy, allowHosts: a.allow_hosts, allowCidrs: a.allow_cidrs, allowHostLoopback: a.allow_host_loopback });
}
