/**
 * The host-path rules on their own, without sandboxes: what a host-path parameter may be
 * (`hostPath`), what an export may replace (`checkReplaceable`), how a finished output is moved
 * into place (`placeOutput`), and where a link of an exported copy leads (`whereLinkLeads`).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkReplaceable, hostPath } from "../../src/shared/host-path.js";
import { PyroError } from "../../src/shared/errors.js";
import { placeOutput } from "../../src/core/transfer.js";
import { whereLinkLeads } from "../../src/agent/export.js";

let dir: string;

beforeAll(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "pyro-host-path-")));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function refusal(fn: () => unknown): PyroError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PyroError);
    expect((err as PyroError).code).toBe("invalid_argument");
    return err as PyroError;
  }
  throw new Error("expected invalid_argument");
}

describe("hostPath", () => {
  it("refuses empty, blank, NUL-containing and non-string values, naming the parameter", () => {
    expect(refusal(() => hostPath("", "--output")).message).toBe("--output is empty; it must name a host path");
    expect(refusal(() => hostPath(" \t\n", "outputPath")).message).toBe("outputPath is blank; it must name a host path");
    expect(refusal(() => hostPath("a\0b", "seed_path")).message).toMatch(/^seed_path contains a NUL byte/);
    expect(refusal(() => hostPath(undefined, "source")).message).toMatch(/^source must be a host path/);
    expect(refusal(() => hostPath(null, "source")).message).toMatch(/null/);
  });

  it("returns the absolute path of anything else, resolved against the current directory", () => {
    expect(hostPath("x/../y", "p")).toBe(path.join(process.cwd(), "y"));
    expect(hostPath("/a/b/", "p")).toBe("/a/b");
    expect(hostPath(" name with spaces ", "p")).toBe(path.join(process.cwd(), " name with spaces "));
  });
});

describe("checkReplaceable", () => {
  it("refuses /, the current directory, its ancestors, the home directory and guarded directories", () => {
    for (const p of ["/", process.cwd(), path.dirname(process.cwd()), os.homedir(), path.dirname(os.homedir())]) {
      expect(refusal(() => checkReplaceable(p)).message, p).toMatch(/root|current directory|home directory/);
    }
    const state = path.join(dir, "state");
    expect(refusal(() => checkReplaceable(state, [{ path: state, what: "pyro's state directory", inside: true }])).message).toMatch(/state directory/);
    expect(refusal(() => checkReplaceable(path.join(state, "workspaces", "x"), [{ path: state, what: "pyro's state directory", inside: true }])).message).toMatch(/inside pyro's state directory/);
  });

  it("refuses them through a symlinked parent too, and accepts a path of its own", () => {
    const rootLink = path.join(dir, "to-root");
    fs.symlinkSync("/", rootLink);
    expect(() => checkReplaceable(path.join(rootLink, process.cwd().slice(1)))).toThrow(/current directory/);
    expect(() => checkReplaceable(path.join(dir, "new-output"))).not.toThrow();
    // The last component is never followed: a link to `/` named as the output is replaced itself.
    expect(() => checkReplaceable(rootLink)).not.toThrow();
  });
});

describe("placeOutput", () => {
  it("moves a file or directory into place and never clobbers without replace", async () => {
    const built = path.join(dir, "built-file");
    fs.writeFileSync(built, "new");
    const out = path.join(dir, "placed-file");
    await placeOutput(built, out, false);
    expect(fs.readFileSync(out, "utf8")).toBe("new");
    expect(fs.existsSync(built)).toBe(false);
    fs.writeFileSync(built, "newer");
    await expect(placeOutput(built, out, false)).rejects.toMatchObject({ code: "output_exists" });
    expect(fs.readFileSync(out, "utf8")).toBe("new");
  });

  it("replaces exactly the named entry, a directory by a file too, leaving nothing aside", async () => {
    const parent = path.join(dir, "replace");
    fs.mkdirSync(path.join(parent, "out", "sub"), { recursive: true });
    fs.writeFileSync(path.join(parent, "sibling"), "s");
    const built = path.join(parent, "built");
    fs.writeFileSync(built, "file now");
    await placeOutput(built, path.join(parent, "out"), true);
    expect(fs.readFileSync(path.join(parent, "out"), "utf8")).toBe("file now");
    expect(fs.readdirSync(parent).sort()).toEqual(["out", "sibling"]);
  });

  it("puts the old output back when the swap fails", async () => {
    const parent = path.join(dir, "swap-fails");
    fs.mkdirSync(path.join(parent, "out"), { recursive: true });
    fs.writeFileSync(path.join(parent, "out", "old.txt"), "old");
    await expect(placeOutput(path.join(parent, "missing"), path.join(parent, "out"), true)).rejects.toMatchObject({ code: "ENOENT" });
    expect(fs.readFileSync(path.join(parent, "out", "old.txt"), "utf8")).toBe("old");
    expect(fs.readdirSync(parent)).toEqual(["out"]);
  });
});

describe("whereLinkLeads", () => {
  it("follows links inside the copy and calls any step above the root, absolute target or loop outside", () => {
    const root = path.join(dir, "tree");
    fs.mkdirSync(path.join(root, "sub"), { recursive: true });
    const links: Record<string, string> = {
      dot: ".",
      deep: "dot/dot/../../..",
      sneaky: "dot/dot/../..",
      rel: "ok-target",
      "sub/back": "../dot/rel",
      "sub/up": "../..",
      abs: "/etc/passwd",
      "via-abs": "abs/..",
      "loop-a": "loop-b",
      "loop-b": "loop-a",
      missing: "nothing/here",
      "missing-up": "nothing/../..",
    };
    for (const [name, target] of Object.entries(links)) fs.symlinkSync(target, path.join(root, name));
    const verdicts = Object.fromEntries(Object.keys(links).map((name) => [name, whereLinkLeads(path.join(root, name), root)]));
    expect(verdicts).toEqual({
      dot: "inside",
      deep: "outside-via-link",
      sneaky: "outside-via-link",
      rel: "inside",
      "sub/back": "inside",
      "sub/up": "outside",
      abs: "outside",
      "via-abs": "outside-via-link",
      "loop-a": "loop",
      "loop-b": "loop",
      missing: "inside",
      "missing-up": "outside",
    });
  });
});
