/**
 * CLI commands built from operation declarations (src/ops/): the words, positional arguments and
 * flags come from each operation's input fields (help text from the same descriptions MCP shows),
 * the action turns what commander collected into the operation's input, runs its handler, and
 * prints `--json` or the operation's rendering. Commands whose CLI truly differs (raw exec bytes,
 * `run`'s signal handling) pass their own action and still get their flags from the declaration.
 */
import { Option } from "commander";
import type { Command } from "commander";
import type * as z from "zod";
import { cliNumber as number } from "../ops/fields.js";
import { flagOf } from "../ops/op.js";

export { number };
import type { AnyOperation as Operation, CliSpelling, Field } from "../ops/op.js";
import type { Pyro } from "../sdk/pyro.js";

/** What a command's action needs from the program around it. */
export interface CliIo {
  pyro: () => Pyro;
  json: boolean;
  out: (text: string) => void;
  printJson: (value: unknown) => void;
  /** Runs an action, rendering any error the one way and closing the SDK. */
  action: <A extends unknown[]>(fn: (...args: A) => Promise<void>) => (...args: A) => Promise<void>;
}

/** An action for a command whose CLI differs from the generic one. */
export type CustomAction = (input: Record<string, unknown>, cliOnly: Record<string, unknown>) => Promise<void>;

/** Descriptions of command groups (`pyro workspace file --help`): the only CLI-only words. */
export const GROUP_DESCRIPTIONS: Record<string, string> = {
  env: "Environments: Debian root filesystems built locally from Debian packages",
  workspace: "Persistent workspaces: a sandbox with a /workspace that outlives each call",
  "workspace sync": "Move content from the host into a running workspace",
  "workspace file": "Model-native file operations under /workspace",
  "workspace patch": "Apply unified diffs to files under /workspace",
  "workspace snapshot": "Named checkpoints of /workspace (`baseline` exists from creation)",
  "workspace disk": "Secondary tools that read a stopped workspace without starting it",
  "workspace service": "Long-running processes with readiness checks; logs kept outside /workspace",
  "workspace shell": "Interactive shells on a real PTY, readable as plain text",
  "workspace network": "A workspace's network policy, allow-lists and published ports; changes apply without a restart",
  mcp: "Model Context Protocol server",
  host: "Connect chat hosts (Claude Code, Codex, OpenCode, …) to `pyro mcp serve`",
};

/** The command for `words` under `program`, creating groups on the way. */
export function commandAt(program: Command, words: string[]): Command {
  let parent = program;
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const found = parent.commands.find((c) => c.name() === word);
    if (found) {
      parent = found;
      continue;
    }
    parent = parent.command(word);
    const group = words.slice(0, i + 1).join(" ");
    if (i < words.length - 1 && GROUP_DESCRIPTIONS[group]) parent.description(GROUP_DESCRIPTIONS[group]);
  }
  return parent;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}


/** The zod kind under optional/default wrappers: "number", "boolean", "array", "record", … */
function kindOf(schema: z.ZodType): string {
  let def = (schema as unknown as { _zod: { def: { type: string; innerType?: z.ZodType } } })._zod.def;
  while ((def.type === "optional" || def.type === "default" || def.type === "nullable") && def.innerType) {
    def = (def.innerType as unknown as { _zod: { def: { type: string; innerType?: z.ZodType } } })._zod.def;
  }
  return def.type;
}

interface FlagPlan {
  key: string;
  option: Option;
  parse?: (raw: never, flag: string) => unknown;
  negation?: Option;
}

/** The commander option for one field spelled as a flag. */
function planFlag(key: string, f: Field): FlagPlan {
  const spelling = (f.cli ?? {}) as Exclude<CliSpelling, { arg: string }>;
  const kind = kindOf(f.schema as z.ZodType);
  const named = flagOf(key, spelling);
  const long = named.split(" ")[0]!;
  const placeholder = named.includes(" ") ? "" : kind === "boolean" ? "" : ` ${spelling.value ?? (kind === "number" ? "<n>" : `<${key.replace(/_/g, "-")}>`)}`;
  const help = spelling.help ?? (f.schema as z.ZodType).description ?? "";
  const option = new Option(`${named}${placeholder}`, help);
  if (spelling.required) option.makeOptionMandatory();
  if (kind === "number") option.argParser(number(long));
  else if (spelling.repeat || kind === "array" || kind === "record") option.argParser(collect);
  const plan: FlagPlan = { key, option };
  if (spelling.parse) plan.parse = spelling.parse;
  if (spelling.negatable) plan.negation = new Option(`--no-${long.slice(2)}`, `the opposite of ${long}`);
  return plan;
}

/**
 * Adds the command of one operation to the program. Positional arguments in field order, then the
 * flags; the action builds the MCP-shaped input from them and runs the operation (or `custom`).
 */
export function addOperation(program: Command, operation: Operation, io: CliIo, custom?: CustomAction): Command {
  if (!operation.cli) throw new Error(`operation ${operation.mcp ?? operation.sdk} has no CLI words`);
  const command = commandAt(program, operation.cli.split(" ")).description(operation.summary);
  const args: { key: string; parse?: (raw: never, name: string) => unknown; name: string }[] = [];
  const flags: FlagPlan[] = [];
  for (const [key, f] of Object.entries(operation.input as Record<string, Field>)) {
    if (f.cli === false) continue;
    if (f.cli && "arg" in f.cli) {
      command.argument(f.cli.arg, f.cli.label ?? (f.schema as z.ZodType).description);
      args.push({ key, name: f.cli.arg.replace(/[<>[\].]/g, "").toUpperCase(), ...(f.cli.parse ? { parse: f.cli.parse } : {}) });
    } else flags.push(planFlag(key, f));
  }
  for (const plan of flags) {
    command.addOption(plan.option);
    if (plan.negation) command.addOption(plan.negation);
  }
  const cliOnly = Object.entries(operation.cliFlags ?? {});
  for (const [, extra] of cliOnly.filter(([name]) => name !== "idOnly")) {
    const option = new Option(extra.flag, extra.help);
    if (extra.repeat) option.argParser(collect);
    command.addOption(option);
  }
  command.addOption(new Option("--json", "print structured JSON instead of human-readable text"));
  // --id-only last: help lists it after --json, as it always has.
  const idOnly = operation.cliFlags?.idOnly;
  if (idOnly) command.addOption(new Option(idOnly.flag, idOnly.help));

  command.action(
    io.action(async (...received: unknown[]) => {
      const opts = received[args.length] as Record<string, unknown>;
      const input: Record<string, unknown> = {};
      args.forEach((arg, i) => {
        const value = received[i];
        if (value !== undefined && !(Array.isArray(value) && value.length === 0)) input[arg.key] = arg.parse ? arg.parse(value as never, arg.name) : value;
      });
      for (const plan of flags) {
        const raw = opts[plan.option.attributeName()];
        if (raw === undefined) continue;
        input[plan.key] = plan.parse ? plan.parse(raw as never, plan.option.long!) : raw;
      }
      const extras: Record<string, unknown> = {};
      for (const [name, extra] of cliOnly) {
        const raw = opts[new Option(extra.flag).attributeName()];
        if (raw !== undefined) extras[name] = extra.parse ? extra.parse(raw as never, extra.flag.split(" ")[0]!) : raw;
      }
      const shaped = operation.fromCli ? await operation.fromCli(input, extras) : input;
      if (custom) return custom(shaped, extras);
      const progress = io.json ? undefined : (line: string) => void process.stderr.write(`${line}\n`);
      const result = await operation.run(io.pyro(), shaped as never, progress ? { surface: "cli", progress } : { surface: "cli" });
      const printed = operation.cliPrint?.(result, extras);
      if (printed !== undefined) io.out(printed);
      else if (io.json) io.printJson(result);
      else {
        const shown = operation.human ? operation.human(result, extras) : operation.text(result, { surface: "cli", offers: () => true });
        if (typeof shown === "string") io.out(shown);
        else {
          process.stdout.write(shown.stdout);
          if (shown.stderr) process.stderr.write(shown.stderr);
        }
      }
      if (operation.exitCode) {
        const code = operation.exitCode(result);
        if (code !== 0) process.exitCode = code;
      }
    }),
  );
  return command;
}
