/**
 * What one public operation is, declared once: its name on each surface (MCP tool, SDK method,
 * CLI words), its input (each field's schema and description written once, and how the CLI
 * spells it), its output shape, its handler and its text renderings. The MCP server registers
 * tools from these declarations (mcp/registry.ts), the CLI builds its commands from them
 * (cli/commands.ts), and the contract (contract.ts) is derived from them, so adding an option to
 * an operation is one edit here plus the SDK method that takes it.
 *
 * Input is always the MCP shape (snake_case keys); the CLI turns its flags and arguments into that
 * shape, then both surfaces validate it with the same zod schema and call the same handler. Pure
 * declarations: nothing here touches a sandbox.
 */
import type * as z from "zod";
import type { ToolAnnotations } from "@modelcontextprotocol/sdk/types.js";
import type { Pyro } from "../sdk/pyro.js";
import type { CliAdjust, CliParser } from "./cli-values.js";

export { given } from "./cli-values.js";

/** How the CLI spells one input field. */
export type CliSpelling =
  /**
   * A positional argument, e.g. `<workspace>`, `[path]`, `[command...]`; `label` is its help;
   * `parse` checks or converts it, naming it as the CLI does (`SOURCE`).
   */
  | { arg: string; label?: string; parse?: CliParser }
  /**
   * A flag. `flag` defaults to the key in kebab-case (`max_bytes` → `--max-bytes`); `value` is the
   * placeholder (`<n>`), derived from the schema when absent (none for booleans). `parse` turns
   * what commander collected (a string, a list for repeatable flags, true for switches) into the
   * MCP-shaped value; by default numbers are parsed strictly, lists are collected and records are
   * `KEY=VALUE` pairs. `required` makes the CLI insist on the flag; `negatable` adds `--no-…`
   * beside a switch, so false can be said explicitly.
   */
  | { flag?: string; value?: string; repeat?: boolean; required?: boolean; negatable?: boolean; parse?: CliParser; help?: string };

export interface Field<T = unknown> {
  /** The MCP input schema of this field, with its description (shown by MCP and by CLI help). */
  schema: z.ZodType<T>;
  /** How the CLI spells it; `false` when the CLI does not offer it. Default: a flag. */
  cli?: CliSpelling | false;
}

/** A flag only the CLI has (`--id-only`, `--text-file`, `--content-only`): never an MCP argument. */
export interface CliOnlyFlag {
  /** `--text-file <file>` or `--content-only`. */
  flag: string;
  help: string;
  repeat?: boolean;
  parse?: CliParser;
}

/** What a handler may use of the surface calling it. */
export interface RunContext {
  /** Which surface calls: a few defaults differ by design (MCP's shell_read renders and waits). */
  surface: "cli" | "mcp";
  /** Progress lines (environment builds, prepare); the CLI shows them on stderr. */
  progress?: (line: string) => void;
}

/** What a rendering may ask of the surface it is shown on. */
export interface TextContext {
  /** Whether this surface offers the MCP tool (or, on the CLI, always true). */
  offers: (tool: string) => boolean;
  surface: "cli" | "mcp";
}

export type InputOf<F extends Record<string, Field>> = { [K in keyof F]: F[K] extends Field<infer T> ? T : never };

export interface Operation<F extends Record<string, Field> = Record<string, Field>, R = unknown> {
  /** MCP tool name; absent for CLI-only operations. */
  mcp?: string;
  /** The `Pyro` method that does it; absent when it is CLI-only. */
  sdk?: string;
  /** Words after `pyro`, e.g. "workspace file read"; absent when it has no CLI command. */
  cli?: string;
  /** One line for CLI help. */
  summary: string;
  /** MCP title and description, written for a model choosing between tools. */
  title?: string;
  description?: string;
  input: F;
  /** CLI-only flags, keyed by the name `fromCli` reads them under (camelCase of the flag). */
  cliFlags?: Record<string, CliOnlyFlag>;
  /** Adjusts what the CLI collected into the MCP shape (e.g. `--shell` vs `-- argv`, `--text-file`). */
  cliAdjust?: CliAdjust;
  /** `--id-only` and such: the CLI prints this instead of the rendering when it returns a string. */
  cliPrint?: (result: R, cliOnly: Record<string, unknown>) => string | undefined;
  /** The structured result schema (MCP output schema); required of every MCP tool. */
  output?: z.ZodRawShape;
  annotations?: ToolAnnotations;
  /** Does the operation. Input is validated already. */
  run: (pyro: Pyro, input: InputOf<F>, ctx: RunContext) => Promise<R>;
  /** The result as MCP structured content, when it differs from the SDK's (bounded lists, cleaned output). */
  forModel?: (result: R) => object;
  /** Text for a model (MCP) and, unless `human` is given, for a terminal. */
  text: (result: R, ctx: TextContext) => string;
  /**
   * Text for a terminal, when it differs from the model's: a string for stdout, or the bytes for
   * stdout and stderr apart (program output, notes about it).
   */
  human?: (result: R, cliOnly: Record<string, unknown>) => string | { stdout: string | Uint8Array; stderr?: string };
  /** The CLI's exit status for a result (a failed service start, an unhealthy doctor report). */
  exitCode?: (result: R) => number;
}

/** Declares an operation; only here so the field types flow into `run`. */
export function op<F extends Record<string, Field>, R>(declaration: Operation<F, R>): Operation<F, R> {
  return declaration;
}

/** A field: its schema (with `.describe`) and how the CLI spells it. */
export function field<T>(schema: z.ZodType<T>, cli?: CliSpelling | false): Field<T> {
  return cli === undefined ? { schema } : { schema, cli };
}

/** The CLI flag of a field key: `max_bytes` → `--max-bytes`. */
export function flagOf(key: string, spelling?: CliSpelling | false): string {
  if (spelling && "flag" in spelling && spelling.flag) return spelling.flag;
  return `--${key.replace(/_/g, "-")}`;
}



/** The zod shape an operation's MCP tool takes. */
export function inputShape(operation: AnyOperation): z.ZodRawShape {
  return Object.fromEntries(Object.entries(operation.input as Record<string, Field>).map(([key, f]) => [key, f.schema as z.ZodType]));
}

/**
 * An operation of any input and result, as the catalogue holds them. Each is type-checked where it
 * is declared (`op()`); surfaces only pass its own results back to its own renderings.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above: the catalogue is heterogeneous
export type AnyOperation = Operation<any, any>;
