/**
 * CLI commands built from the operation declarations (src/ops/), through the manifest the build
 * writes from them (ops/manifest.ts, dist/cli/commands.json): words, positional arguments and flags
 * with help from the same descriptions MCP shows. The action turns what commander collected into
 * the operation's input (named parsers, no schema library), then loads the catalogue, runs the
 * operation's handler and prints `--json` or its rendering. Commands whose CLI truly differs (raw
 * exec bytes, `run`'s signal handling) pass their own action and still get their flags from the
 * declaration.
 */
import { Option } from "commander";
import type { Command } from "commander";
import { adjustFromCli, CLI_PARSERS, cliNumber, isNumberParse } from "../ops/cli-values.js";
import type { CliParser } from "../ops/cli-values.js";
import type { CliCommandSpec } from "../ops/manifest.js";
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

export { cliNumber as number };

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

function parsed(parse: CliParser | undefined, raw: unknown, name: string): unknown {
  return parse ? (CLI_PARSERS[parse] as (raw: unknown, name: string) => unknown)(raw, name) : raw;
}

/**
 * Adds the command of one operation to the program. Positional arguments in field order, then the
 * flags; the action builds the MCP-shaped input from them and runs the operation (or `custom`).
 */
export function addCommand(program: Command, spec: CliCommandSpec, io: CliIo, custom?: CustomAction): Command {
  const command = commandAt(program, spec.words.split(" ")).description(spec.summary);
  for (const a of spec.args) command.argument(a.arg, a.label);
  const options = spec.flags.map((f) => {
    const option = new Option(f.flags, f.help);
    if (f.required) option.makeOptionMandatory();
    // Numbers are checked at once, so a bad one is an error before anything runs.
    if (isNumberParse(f.parse)) option.argParser(cliNumber(f.flags.split(" ")[0]!, f.parse));
    else if (f.collect) option.argParser(collect);
    command.addOption(option);
    if (f.negation) command.addOption(new Option(f.negation, `the opposite of ${f.flags.split(" ")[0]}`));
    return option;
  });
  const extras = spec.extras.map((e) => {
    const option = new Option(e.flags, e.help);
    if (isNumberParse(e.parse)) option.argParser(cliNumber(e.flags.split(" ")[0]!, e.parse));
    else if (e.collect) option.argParser(collect);
    return option;
  });
  for (const option of extras.filter((_, i) => spec.extras[i]!.name !== "idOnly")) command.addOption(option);
  command.addOption(new Option("--json", "print structured JSON instead of human-readable text"));
  // --id-only after --json, as help has always listed it.
  for (const option of extras.filter((_, i) => spec.extras[i]!.name === "idOnly")) command.addOption(option);

  command.action(
    io.action(async (...received: unknown[]) => {
      const opts = received[spec.args.length] as Record<string, unknown>;
      const input: Record<string, unknown> = {};
      spec.args.forEach((a, i) => {
        const value = received[i];
        if (value !== undefined && !(Array.isArray(value) && value.length === 0)) input[a.key] = parsed(a.parse, value, a.name);
      });
      spec.flags.forEach((f, i) => {
        const raw = opts[options[i]!.attributeName()];
        if (raw !== undefined) input[f.key] = isNumberParse(f.parse) ? raw : parsed(f.parse, raw, options[i]!.long!);
      });
      const cliOnly: Record<string, unknown> = {};
      spec.extras.forEach((e, i) => {
        const raw = opts[extras[i]!.attributeName()];
        if (raw !== undefined) cliOnly[e.name] = isNumberParse(e.parse) ? raw : parsed(e.parse, raw, extras[i]!.long!);
      });
      const shaped = spec.adjust ? await adjustFromCli(spec.adjust, input, cliOnly) : input;
      if (custom) return custom(shaped, cliOnly);
      await runOperation(spec.words, shaped, cliOnly, io);
    }),
  );
  return command;
}

/** Runs the operation behind a command and prints its result: the catalogue loads here, not at start-up. */
async function runOperation(words: string, input: Record<string, unknown>, cliOnly: Record<string, unknown>, io: CliIo): Promise<void> {
  const { OPERATIONS } = await import("../ops/index.js");
  const operation = OPERATIONS.find((o) => o.cli === words);
  if (!operation) throw new Error(`no operation declares the command ${words}`);
  const progress = io.json ? undefined : (line: string) => void process.stderr.write(`${line}\n`);
  const result = await operation.run(io.pyro(), input as never, progress ? { surface: "cli", progress } : { surface: "cli" });
  const printed = operation.cliPrint?.(result, cliOnly);
  if (printed !== undefined) io.out(printed);
  else if (io.json) io.printJson(result);
  else {
    const shown = operation.human ? operation.human(result, cliOnly) : operation.text(result, { surface: "cli", offers: () => true });
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
}
