// Which Debian mirror environment builds download from, decided from apt source files.
import { describe, it, expect } from "vitest";
import { detectDebianMirror, parseAptSources, resolveMirror, DEFAULT_DEBIAN_MIRROR } from "../../src/environments/mirror.js";
import { PyroError } from "../../src/shared/errors.js";

const DEB822_HOST = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;

describe("detectDebianMirror", () => {
  it("picks the bookworm entry of a deb822 .sources file", () => {
    expect(detectDebianMirror([{ path: "/etc/apt/sources.list.d/debian.sources", text: DEB822_HOST }])).toBe(
      "http://deb.debian.org/debian",
    );
  });

  it("skips the security archive even when it comes first", () => {
    const text = `Types: deb\nURIs: http://security.debian.org/debian-security\nSuites: bookworm-security\n\n${DEB822_HOST}`;
    expect(detectDebianMirror([{ path: "x.sources", text }])).toBe("http://deb.debian.org/debian");
  });

  it("reads one-line sources.list entries, with option blocks and comments", () => {
    const text = [
      "# deb http://commented.example/debian bookworm main",
      "deb-src http://src.example/debian bookworm main",
      "deb http://security.debian.org/debian-security bookworm-security main",
      "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://ftp.de.debian.org/debian/ bookworm main contrib",
    ].join("\n");
    expect(detectDebianMirror([{ path: "/etc/apt/sources.list", text }])).toBe("http://ftp.de.debian.org/debian");
  });

  it("prefers a bookworm entry over an earlier Debian mirror for another suite", () => {
    const files = [
      { path: "/etc/apt/sources.list", text: "deb http://mirror.one.example/debian trixie main\n" },
      { path: "/etc/apt/sources.list.d/b.list", text: "deb http://mirror.two.example/debian bookworm main\n" },
    ];
    expect(detectDebianMirror(files)).toBe("http://mirror.two.example/debian");
  });

  it("falls back to any Debian archive URI when no entry is for bookworm", () => {
    const text = "deb http://proxy.example:3142/deb.debian.org/debian trixie main\n";
    expect(detectDebianMirror([{ path: "/etc/apt/sources.list", text }])).toBe("http://proxy.example:3142/deb.debian.org/debian");
  });

  it("ignores disabled stanzas, apt-only transports and non-Debian archives", () => {
    const text = [
      "Types: deb",
      "URIs: http://disabled.example/debian",
      "Suites: bookworm",
      "Enabled: no",
      "",
      "Types: deb",
      "URIs: mirror+file:///etc/apt/mirrors.txt",
      "Suites: bookworm",
      "",
      "Types: deb",
      "URIs: http://archive.ubuntu.com/ubuntu",
      "Suites: noble",
    ].join("\n");
    expect(detectDebianMirror([{ path: "x.sources", text }])).toBe(DEFAULT_DEBIAN_MIRROR);
  });

  it("falls back to deb.debian.org when there are no sources at all", () => {
    expect(detectDebianMirror([])).toBe(DEFAULT_DEBIAN_MIRROR);
  });

  it("keeps deb822 continuation lines (an inline key) out of the other fields", () => {
    const text = [
      "Types: deb",
      "URIs: https://mirror.example/debian",
      "Suites: bookworm",
      "Signed-By:",
      " -----BEGIN PGP PUBLIC KEY BLOCK-----",
      " .",
      " mQINBGPL0BUBEADmW5NdOOHwPIJlgPu6JDcKw/NZJPR8lsD3K87ZM18gzyQZJD+w",
      " -----END PGP PUBLIC KEY BLOCK-----",
    ].join("\n");
    const [entry] = parseAptSources({ path: "x.sources", text });
    expect(entry).toEqual({ type: "deb", uri: "https://mirror.example/debian", suites: ["bookworm"], enabled: true });
  });
});

describe("resolveMirror", () => {
  it("uses the explicit option over PYRO_DEBIAN_MIRROR", () => {
    expect(resolveMirror("http://a.example/debian/", { PYRO_DEBIAN_MIRROR: "http://b.example/debian" })).toBe("http://a.example/debian");
  });

  it("uses PYRO_DEBIAN_MIRROR when no option is given", () => {
    expect(resolveMirror(undefined, { PYRO_DEBIAN_MIRROR: "http://b.example/debian" })).toBe("http://b.example/debian");
  });

  it("refuses a mirror that is not a URL debootstrap can fetch from", () => {
    try {
      resolveMirror("deb.debian.org/debian", {});
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PyroError);
      expect((err as PyroError).code).toBe("invalid_argument");
    }
  });
});
