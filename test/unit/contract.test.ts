/**
 * The public contract (src/contract.ts) is the one list of names every surface must match: CLI
 * help, the SDK class, the MCP tool list and docs/public-contract.md are each checked against
 * it, so a flag, method or tool cannot be added, renamed or dropped on one surface only.
 * Spawns the built CLI (`npm test` builds dist first); starts no sandbox.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { CLI_COMMANDS, MCP_MODES, MCP_PROFILES, MCP_TOOLS, SDK_METHODS, SURFACE_OPTIONS } from "../../src/contract.js";
import { ERROR_CODES } from "../../src/shared/errors.js";
import { Pyro } from "../../src/index.js";
import { createMcpServer } from "../../src/mcp/server.js";
import { CLI, REPO } from "../helpers.js";

/** Flags commander adds to every command; they are not part of any command's contract. */
const BUILTIN_FLAGS = new Set(["--help", "-h", "--version"]);
/** Command groups whose subcommands `pyro <group> --help` lists. "" is the top level. */
const GROUPS = ["", "env", "workspace", "mcp", "host"];

function help(words: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...words, "--help"], { encoding: "utf8", timeout: 30_000 });
  expect({ words, exit: r.status, stderr: r.stderr }).toEqual({ words, exit: 0, stderr: "" });
  return r.stdout;
}

/** Lines of one section ("Options:", "Commands:") of commander's help, up to the next blank line. */
function section(text: string, title: string): string[] {
  const lines = text.split("\n");
  const start = lines.indexOf(title);
  if (start < 0) return [];
  const end = lines.findIndex((l, i) => i > start && l.trim() === "");
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** Long flags declared in a help text's Options section (wrapped description lines ignored). */
function helpFlags(text: string): string[] {
  return section(text, "Options:")
    .map((line) => /^ {2}(?:-[A-Za-z], )?(--[a-z][a-z0-9-]*)/.exec(line)?.[1])
    .filter((flag): flag is string => flag !== undefined && !BUILTIN_FLAGS.has(flag));
}

/** Subcommand words a group's help lists, without commander's `help` pseudo-command. */
function helpSubcommands(text: string): string[] {
  return section(text, "Commands:")
    .map((line) => /^ {2}([a-z][a-z0-9-]*)/.exec(line)?.[1])
    .filter((word): word is string => word !== undefined && word !== "help");
}

/** The words the contract puts directly under a group: "" → top-level commands. */
function contractWordsUnder(group: string): string[] {
  const depth = group === "" ? 0 : group.split(" ").length;
  const words = CLI_COMMANDS.map((c) => c.command.split(" "))
    .filter((w) => w.length > depth && w.slice(0, depth).join(" ") === group)
    .map((w) => w[depth]!);
  return [...new Set(words)];
}

describe("the CLI matches the contract", () => {
  it.each(CLI_COMMANDS.map((c) => [c.command, c.flags] as const))("`pyro %s --help` shows exactly the contract's flags", (command, flags) => {
    const shown = helpFlags(help(command.split(" ")));
    const missingFromHelp = flags.filter((f) => !shown.includes(f));
    const missingFromContract = shown.filter((f) => !flags.includes(f));
    expect({ missingFromHelp, missingFromContract }).toEqual({ missingFromHelp: [], missingFromContract: [] });
  });

  it.each(GROUPS)("`pyro %s --help` lists exactly the contract's subcommands", (group) => {
    const shown = helpSubcommands(help(group === "" ? [] : group.split(" ")));
    expect(shown.sort()).toEqual(contractWordsUnder(group).sort());
  });

  it("has a help-listed group for every multi-word command in the contract", () => {
    const groups = new Set(CLI_COMMANDS.filter((c) => c.command.includes(" ")).map((c) => c.command.split(" ")[0]!));
    expect([...groups].sort()).toEqual(GROUPS.filter((g) => g !== "").sort());
  });
});

describe("the SDK matches the contract", () => {
  // The package's Pyro and the classes it extends, up to Object: every public method a user can call.
  const prototypes: object[] = [];
  for (let p: object | null = Pyro.prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) prototypes.push(p);
  const prototypeMethods = [
    ...new Set(prototypes.flatMap((p) => Object.getOwnPropertyNames(p).filter((name) => name !== "constructor" && typeof Object.getOwnPropertyDescriptor(p, name)?.value === "function"))),
  ];

  it("has every contract method as a function on Pyro", () => {
    const missing = SDK_METHODS.filter((name) => typeof (Pyro.prototype as unknown as Record<string, unknown>)[name] !== "function");
    expect(missing).toEqual([]);
  });

  it("has no public method outside the contract", () => {
    expect(prototypeMethods.filter((name) => !(SDK_METHODS as readonly string[]).includes(name))).toEqual([]);
  });
});

describe("the MCP server matches the contract", () => {
  let home: string;
  let pyro: Pyro;
  let client: Client;
  let tools: Tool[];

  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-contract-"));
    pyro = new Pyro({ home });
    const server = createMcpServer(pyro, { profile: "workspace-full" });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    client = new Client({ name: "pyro-contract-test", version: "0.0.0" });
    await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
    tools = (await client.listTools()).tools;
  });

  afterAll(async () => {
    await client?.close();
    pyro?.close();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it("lists exactly the contract's tools, in the contract's order, in the workspace-full profile", () => {
    expect(tools.map((t) => t.name)).toEqual([...MCP_TOOLS]);
  });

  /** The tool names a server built with these options lists. */
  async function listed(options: { profile?: string; mode?: string }): Promise<string[]> {
    const server = createMcpServer(pyro, options);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const c = new Client({ name: "pyro-contract-test", version: "0.0.0" });
    await Promise.all([server.connect(serverSide), c.connect(clientSide)]);
    try {
      return (await c.listTools()).tools.map((t) => t.name);
    } finally {
      await c.close();
    }
  }

  it.each(Object.entries(MCP_PROFILES))("lists exactly the contract's tools of the profile %s, in its order", async (profile, names) => {
    expect(await listed({ profile })).toEqual([...names]);
  });

  it.each(Object.entries(MCP_MODES))("lists exactly the contract's tools of the mode %s, in its order", async (mode, names) => {
    expect(await listed({ mode })).toEqual([...names]);
  });

  it("shows the workspace-core profile when no profile or mode is given", async () => {
    expect(await listed({})).toEqual([...MCP_PROFILES["workspace-core"]]);
  });

  it("has every tool of every profile and mode in the contract's tool list", () => {
    const all = [...Object.values(MCP_PROFILES), ...Object.values(MCP_MODES)].flat();
    expect(all.filter((t) => !(MCP_TOOLS as readonly string[]).includes(t))).toEqual([]);
  });

  it.each([...MCP_TOOLS])("describes %s well enough for a model to choose it, with input and output schemas", (name) => {
    const tool = tools.find((t) => t.name === name)!;
    expect(tool, `${name} is listed`).toBeDefined();
    expect(tool.description?.length ?? 0, `${name}: ${JSON.stringify(tool.description)}`).toBeGreaterThanOrEqual(80);
    expect(tool.inputSchema.type).toBe("object");
    expect(tool.outputSchema?.type).toBe("object");
    expect(Object.keys(tool.outputSchema?.properties ?? {}).length).toBeGreaterThan(0);
  });
});

/** The help text of one flag: its line of the Options section and the wrapped lines after it. */
function flagHelp(text: string, flag: string): string {
  const lines = section(text, "Options:");
  const start = lines.findIndex((l) => new RegExp(`^ {2}(?:-[A-Za-z], )?${flag}(?![a-z0-9-])`).test(l));
  if (start < 0) return "";
  const end = lines.findIndex((l, i) => i > start && /^ {2}-/.test(l));
  return lines.slice(start, end < 0 ? undefined : end).join(" ");
}

describe.each(SURFACE_OPTIONS.map((o) => [o.cli.flag, o] as const))("the choice %s is the same on every surface", (_flag, option) => {
  const bad = "no-such-value";

  it.each([...option.cli.commands])("`pyro %s` takes the flag, and its help names every value", (command) => {
    expect(CLI_COMMANDS.find((c) => c.command === command)?.flags).toContain(option.cli.flag);
    const text = flagHelp(help(command.split(" ")), option.cli.flag);
    for (const value of option.values) expect(text, value).toMatch(new RegExp(`\\b${value}\\b`));
  });

  it.each([...option.sdk.methods])("the SDK's %s refuses a value outside the contract with invalid_argument naming the values, and creates nothing", async (method) => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-contract-option-"));
    const pyro = new Pyro({ home });
    try {
      const call = (pyro as unknown as Record<string, (o: object) => Promise<unknown>>)[method]!.call(pyro, { environment: "debian:12", command: "true", [option.sdk.option]: bad });
      await expect(call).rejects.toMatchObject({ code: "invalid_argument", message: expect.stringContaining(option.values.join(", ")) });
      expect(fs.existsSync(path.join(home, "workspaces")) ? fs.readdirSync(path.join(home, "workspaces")) : []).toEqual([]);
    } finally {
      pyro.close();
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  const surfaces = [...Object.keys(MCP_PROFILES).map((profile) => ({ profile })), ...Object.keys(MCP_MODES).map((mode) => ({ mode }))];
  it.each(surfaces)("MCP offers it on every listed tool that takes it, with exactly the contract's values (%o), and refuses others with invalid_argument", async (options) => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-contract-option-"));
    const pyro = new Pyro({ home });
    const server = createMcpServer(pyro, options);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const c = new Client({ name: "pyro-contract-test", version: "0.0.0" });
    await Promise.all([server.connect(serverSide), c.connect(clientSide)]);
    try {
      const tools = (await c.listTools()).tools.filter((t) => (option.mcp.tools as readonly string[]).includes(t.name));
      for (const t of tools) {
        expect((t.inputSchema.properties?.[option.mcp.param] as { enum?: string[] } | undefined)?.enum, t.name).toEqual([...option.values]);
        const r = await c.callTool({ name: t.name, arguments: { environment: "debian:12", command: "true", [option.mcp.param]: bad } });
        expect(r.isError, t.name).toBe(true);
        expect((r._meta?.["pyro/error"] as { code?: string } | undefined)?.code, t.name).toBe("invalid_argument");
      }
      expect(fs.existsSync(path.join(home, "workspaces")) ? fs.readdirSync(path.join(home, "workspaces")) : []).toEqual([]);
    } finally {
      await c.close();
      pyro.close();
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});

describe("docs/public-contract.md matches the contract", () => {
  const doc = fs.readFileSync(path.join(REPO, "docs", "public-contract.md"), "utf8");
  /** Every `code span` of the document (single backticks; fenced blocks are not used for names). */
  const spans = [...doc.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!.trim());
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const mentioned = (re: RegExp) => spans.some((s) => re.test(s));

  it.each(CLI_COMMANDS.map((c) => c.command))("names the command `pyro %s`", (command) => {
    expect(mentioned(new RegExp(`^pyro ${escape(command)}(?: |$)`))).toBe(true);
  });

  it.each([...new Set(CLI_COMMANDS.flatMap((c) => c.flags))])("names the flag %s", (flag) => {
    expect(mentioned(new RegExp(`(?:^|[\\s\\[(])${escape(flag)}(?![a-z0-9-])`))).toBe(true);
  });

  it.each([...SDK_METHODS])("names the SDK method %s", (method) => {
    expect(mentioned(new RegExp(`^(?:pyro\\.)?${escape(method)}(?:\\(|$)`))).toBe(true);
  });

  it.each([...MCP_TOOLS])("names the MCP tool %s", (tool) => {
    expect(mentioned(new RegExp(`^${escape(tool)}(?:\\(|$)`))).toBe(true);
  });

  it.each([...Object.keys(MCP_PROFILES), ...Object.keys(MCP_MODES)])("names the MCP profile or mode %s", (name) => {
    expect(spans).toContain(name);
  });

  it.each(Object.keys(ERROR_CODES))("names the error code %s", (code) => {
    expect(spans).toContain(code);
  });
});
