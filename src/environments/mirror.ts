/**
 * Which Debian mirror builds download from. Parsing of apt source files (deb822 `.sources` and
 * one-line `sources.list`) is pure; only `readHostAptSources` touches the filesystem, and
 * nothing here touches the network.
 */
import fs from "node:fs";
import path from "node:path";
import { DEBIAN_SUITE } from "./catalog.js";
import { PyroError } from "../shared/errors.js";

/** Used when the host has no usable apt source: the CDN-backed official redirector. */
export const DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian";

export interface AptSourceFile {
  path: string;
  text: string;
}

/** One `deb`/`deb-src` entry; a deb822 stanza with several URIs yields one entry per URI. */
export interface AptSourceEntry {
  type: string;
  uri: string;
  suites: string[];
  enabled: boolean;
}

/** Parses one apt source file; the format is chosen by the `.sources` extension, as apt does. */
export function parseAptSources(file: AptSourceFile): AptSourceEntry[] {
  return file.path.endsWith(".sources") ? parseDeb822(file.text) : parseOneLine(file.text);
}

function parseOneLine(text: string): AptSourceEntry[] {
  const entries: AptSourceEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) continue;
    // `deb [arch=amd64 signed-by=/k.gpg] URI SUITE COMPONENT...`: drop the option block first.
    const withoutOptions = line.replace(/\[[^\]]*\]/, " ");
    const [type, uri, suite] = withoutOptions.split(/\s+/);
    if (!type || !uri || !suite) continue;
    entries.push({ type, uri, suites: [suite], enabled: true });
  }
  return entries;
}

function parseDeb822(text: string): AptSourceEntry[] {
  const entries: AptSourceEntry[] = [];
  for (const stanza of text.split(/\n[ \t]*\n/)) {
    const fields = new Map<string, string>();
    let current: string | undefined;
    for (const line of stanza.split("\n")) {
      if (line.startsWith("#")) continue;
      // Continuation lines (e.g. an inline Signed-By key block) belong to the previous field.
      if (/^[ \t]/.test(line)) {
        if (current) fields.set(current, `${fields.get(current) ?? ""} ${line.trim()}`);
        continue;
      }
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      current = line.slice(0, colon).trim().toLowerCase();
      fields.set(current, line.slice(colon + 1).trim());
    }
    const words = (key: string) => (fields.get(key) ?? "").split(/\s+/).filter(Boolean);
    const enabled = (fields.get("enabled") ?? "yes").toLowerCase() !== "no";
    for (const type of words("types")) {
      for (const uri of words("uris")) entries.push({ type, uri, suites: words("suites"), enabled });
    }
  }
  return entries;
}

/**
 * A URI debootstrap can fetch from. `mirror+`, `cdrom:` and `tor+` transports are apt-only.
 */
function isFetchableUri(uri: string): boolean {
  return /^(https?|ftp|file):\/\//.test(uri);
}

/** `…/debian` (official mirrors, apt-cacher style proxies); excludes debian-security and friends. */
function looksLikeDebianArchive(uri: string): boolean {
  try {
    const segments = new URL(uri).pathname.split("/").filter(Boolean);
    return segments[segments.length - 1] === "debian";
  } catch {
    return false;
  }
}

function isSecurityEntry(entry: AptSourceEntry): boolean {
  return /debian-security/.test(entry.uri) || entry.suites.some((suite) => suite.endsWith("-security"));
}

/**
 * The host's Debian mirror: the first enabled `deb` entry for bookworm itself, else the first
 * entry whose URI is a Debian archive, else `DEFAULT_DEBIAN_MIRROR`. Security entries are
 * skipped: that archive has no base system to debootstrap from. Pure when `files` is given;
 * without it reads the host's apt sources. Does not consult `PYRO_DEBIAN_MIRROR` (see
 * `resolveMirror`), so the answer always describes the host.
 */
export function detectDebianMirror(files: AptSourceFile[] = readHostAptSources()): string {
  const candidates = files
    .flatMap((file) => parseAptSources(file))
    .filter((e) => e.enabled && e.type === "deb" && isFetchableUri(e.uri) && !isSecurityEntry(e));
  const chosen =
    candidates.find((e) => e.suites.includes(DEBIAN_SUITE)) ??
    candidates.find((e) => looksLikeDebianArchive(e.uri));
  return chosen ? chosen.uri.replace(/\/+$/, "") : DEFAULT_DEBIAN_MIRROR;
}

/** `sources.list` first, then `sources.list.d` in name order: the order apt itself reads them. */
export function readHostAptSources(aptDir = "/etc/apt"): AptSourceFile[] {
  const files: AptSourceFile[] = [];
  const tryRead = (file: string) => {
    try {
      files.push({ path: file, text: fs.readFileSync(file, "utf8") });
    } catch {
      // Missing or unreadable files simply contribute nothing, as with apt.
    }
  };
  tryRead(path.join(aptDir, "sources.list"));
  let names: string[] = [];
  try {
    names = fs.readdirSync(path.join(aptDir, "sources.list.d")).sort();
  } catch {
    names = [];
  }
  for (const name of names) {
    if (name.endsWith(".list") || name.endsWith(".sources")) tryRead(path.join(aptDir, "sources.list.d", name));
  }
  return files;
}

/**
 * The mirror a build uses: the explicit option, else `$PYRO_DEBIAN_MIRROR`, else the host's.
 * Validated here so a typo fails before a half-minute debootstrap, not in the middle of it.
 */
export function resolveMirror(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = explicit ?? (env.PYRO_DEBIAN_MIRROR || undefined) ?? detectDebianMirror();
  if (!isFetchableUri(chosen)) {
    throw new PyroError("invalid_argument", `Debian mirror ${JSON.stringify(chosen)} is not an http(s), ftp or file URL.`, {
      hint: "Pass a mirror such as http://deb.debian.org/debian (option `mirror` or PYRO_DEBIAN_MIRROR).",
    });
  }
  return chosen.replace(/\/+$/, "");
}
