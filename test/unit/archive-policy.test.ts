import { describe, expect, it } from "vitest";
import { checkArchiveEntry, safeRelativeName, archiveKind } from "../../src/shared/archive.js";

const limits = { maxEntries: 3, maxBytes: 100 };
const check = (entry: { path: string; type: string; size?: number; linkpath?: string }) => checkArchiveEntry(entry, { entries: 0, bytes: 0 }, limits);

describe("archive entry policy", () => {
  it("accepts ordinary files, directories and links that stay inside", () => {
    expect(check({ path: "./src/main.c", type: "File", size: 10 })).toBeNull();
    expect(check({ path: "src/", type: "Directory" })).toBeNull();
    expect(check({ path: "a/b/link", type: "SymbolicLink", linkpath: "../c" })).toBeNull();
    expect(check({ path: "hard", type: "Link", linkpath: "src/main.c" })).toBeNull();
  });

  it("refuses '..' components and absolute names", () => {
    expect(check({ path: "../evil", type: "File" })?.code).toBe("archive_unsafe_entry");
    expect(check({ path: "a/../../evil", type: "File" })?.code).toBe("archive_unsafe_entry");
    expect(check({ path: "/etc/passwd", type: "File" })?.code).toBe("archive_unsafe_entry");
  });

  it("refuses symlinks that are absolute or climb out of the destination", () => {
    expect(check({ path: "link", type: "SymbolicLink", linkpath: "/etc" })?.reason).toMatch(/absolute/);
    expect(check({ path: "a/link", type: "SymbolicLink", linkpath: "../../x" })?.reason).toMatch(/escapes/);
    expect(check({ path: "hard", type: "Link", linkpath: "../x" })?.code).toBe("archive_unsafe_entry");
  });

  it("refuses device nodes and FIFOs", () => {
    expect(check({ path: "dev/sda", type: "BlockDevice" })?.code).toBe("archive_unsafe_entry");
    expect(check({ path: "null", type: "CharacterDevice" })?.code).toBe("archive_unsafe_entry");
    expect(check({ path: "fifo", type: "FIFO" })?.code).toBe("archive_unsafe_entry");
  });

  it("stops archive bombs by entry count and by total size", () => {
    const tally = { entries: 0, bytes: 0 };
    for (let i = 0; i < 3; i++) expect(checkArchiveEntry({ path: `f${i}`, type: "File", size: 1 }, tally, limits)).toBeNull();
    expect(checkArchiveEntry({ path: "f4", type: "File", size: 1 }, tally, limits)?.code).toBe("archive_too_large");
    expect(check({ path: "big", type: "File", size: 101 })?.code).toBe("archive_too_large");
  });

  it("normalises names and recognises archive file names", () => {
    expect(safeRelativeName("./a//b/./c")).toBe("a/b/c");
    expect(archiveKind("x.TGZ")).toBe("tar.gz");
    expect(archiveKind("x.tar")).toBe("tar");
    expect(archiveKind("x.zip")).toBeNull();
  });
});
