/**
 * The CLI's view of the catalogue as plain data: per command its words, summary, positional
 * arguments and flags (with help from the same descriptions MCP shows), the named parsers for
 * their values and the adjustments it needs. `npm run build` writes it to dist/cli/commands.json,
 * so the CLI builds its commands without loading the schemas (start-up stays as fast as a
 * hand-written CLI); the contract derives its flag lists from the same function, so what the
 * contract says is what the CLI offers.
 */
import * as z from "zod";
import type { CliAdjust, CliParser } from "./cli-values.js";
import { flagOf } from "./op.js";
import type { AnyOperation, CliSpelling, Field } from "./op.js";

export interface CliArgSpec {
  key: string;
  /** `<workspace>`, `[path]`, `[command...]`. */
  arg: string;
  label: string;
  /** How errors name it: `SOURCE`, `PATH`. */
  name: string;
  parse?: CliParser;
}

export interface CliFlagSpec {
  /** The input field it fills. */
  key: string;
  /** Commander's flag syntax: `--max-bytes <n>`, `--force`. */
  flags: string;
  help: string;
  parse?: CliParser;
  /** Repeatable: values are collected into a list. */
  collect?: boolean;
  required?: boolean;
  /** `--no-…` offered beside a switch. */
  negation?: string;
}

export interface CliExtraSpec {
  /** The name the adjustment reads it under (`textFile`, `idOnly`). */
  name: string;
  flags: string;
  help: string;
  parse?: CliParser;
  collect?: boolean;
}

export interface CliCommandSpec {
  /** Words after `pyro`, e.g. "workspace file read". */
  words: string;
  summary: string;
  args: CliArgSpec[];
  flags: CliFlagSpec[];
  /** Flags only the CLI has; `--id-only` comes last, after `--json`. */
  extras: CliExtraSpec[];
  adjust?: CliAdjust;
}

/**
 * The zod kind under optional/default/nullable wrappers: "number", "boolean", "array", "record", …
 * and "integer" for a number declared `.int()`, so its CLI flag refuses a fraction by the flag's name.
 */
function kindOf(schema: z.ZodType): string {
  let inner: z.ZodType = schema;
  while (inner instanceof z.ZodOptional || inner instanceof z.ZodDefault || inner instanceof z.ZodNullable) inner = inner.unwrap() as z.ZodType;
  if (inner instanceof z.ZodNumber && inner.isInt) return "integer";
  return inner.type;
}

/** The CLI command of one operation. */
export function cliCommandSpec(operation: AnyOperation): CliCommandSpec {
  if (!operation.cli) throw new Error(`operation ${operation.mcp ?? operation.sdk} has no CLI words`);
  const args: CliArgSpec[] = [];
  const flags: CliFlagSpec[] = [];
  for (const [key, f] of Object.entries(operation.input as Record<string, Field>)) {
    const schema = f.schema as z.ZodType;
    if (f.cli === false) continue;
    if (f.cli && "arg" in f.cli) {
      args.push({ key, arg: f.cli.arg, label: f.cli.label ?? schema.description ?? "", name: f.cli.arg.replace(/[<>[\].]/g, "").toUpperCase(), ...(f.cli.parse ? { parse: f.cli.parse } : {}) });
      continue;
    }
    const spelling = (f.cli ?? {}) as Exclude<CliSpelling, { arg: string }>;
    const kind = kindOf(schema);
    const named = flagOf(key, spelling);
    const long = named.split(" ")[0]!;
    const placeholder = named.includes(" ") || kind === "boolean" ? "" : ` ${spelling.value ?? (kind === "number" || kind === "integer" ? "<n>" : `<${key.replace(/_/g, "-")}>`)}`;
    const parse = spelling.parse ?? (kind === "number" || kind === "integer" ? kind : undefined);
    flags.push({
      key,
      flags: `${named}${placeholder}`,
      help: spelling.help ?? schema.description ?? "",
      ...(parse ? { parse } : {}),
      ...(spelling.repeat || kind === "array" || kind === "record" ? { collect: true } : {}),
      ...(spelling.required ? { required: true } : {}),
      ...(spelling.negatable ? { negation: `--no-${long.slice(2)}` } : {}),
    });
  }
  const extras = Object.entries(operation.cliFlags ?? {})
    .sort(([a], [b]) => Number(a === "idOnly") - Number(b === "idOnly"))
    .map(([name, extra]) => ({ name, flags: extra.flag, help: extra.help, ...(extra.parse ? { parse: extra.parse } : {}), ...(extra.repeat ? { collect: true } : {}) }));
  return { words: operation.cli, summary: operation.summary, args, flags, extras, ...(operation.cliAdjust ? { adjust: operation.cliAdjust } : {}) };
}

/** Every CLI command the catalogue declares, in catalogue order. */
export function cliManifest(operations: readonly AnyOperation[]): CliCommandSpec[] {
  return operations.filter((o) => o.cli !== undefined).map(cliCommandSpec);
}

/** The long flags a command's help lists (with --json). */
export function cliFlagNames(spec: CliCommandSpec): string[] {
  return [...spec.flags.flatMap((f) => [f.flags.split(" ")[0]!, ...(f.negation ? [f.negation] : [])]), ...spec.extras.map((e) => e.flags.split(" ")[0]!), "--json"];
}
