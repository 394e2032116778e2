// Image references as users write them, and the rule that keeps them apart from environment
// names: what parses, how Docker Hub names are completed, and what hostile input gets.
import { describe, it, expect } from "vitest";
import {
  formatImageReference,
  isImageReference,
  isLoopbackRegistry,
  parseImageReference,
  suggestedImageReference,
} from "../../src/environments/oci/reference.js";
import { PyroError } from "../../src/shared/errors.js";

const DIGEST = `sha256:${"ab".repeat(32)}`;

function refusal(input: string): PyroError {
  try {
    parseImageReference(input);
  } catch (err) {
    expect(err).toBeInstanceOf(PyroError);
    expect((err as PyroError).code).toBe("invalid_argument");
    return err as PyroError;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

describe("image references", () => {
  it.each([
    ["docker.io/library/node:22", { registry: "registry-1.docker.io", repository: "library/node", tag: "22", digest: null }],
    ["docker.io/node", { registry: "registry-1.docker.io", repository: "library/node", tag: "latest", digest: null }],
    ["library/node", { registry: "registry-1.docker.io", repository: "library/node", tag: "latest", digest: null }],
    ["bitnami/redis:7.2", { registry: "registry-1.docker.io", repository: "bitnami/redis", tag: "7.2", digest: null }],
    ["index.docker.io/python:3.12-slim", { registry: "registry-1.docker.io", repository: "library/python", tag: "3.12-slim", digest: null }],
    ["ghcr.io/org/team/img:v1.0", { registry: "ghcr.io", repository: "org/team/img", tag: "v1.0", digest: null }],
    ["127.0.0.1:5000/x/y:1", { registry: "127.0.0.1:5000", repository: "x/y", tag: "1", digest: null }],
    ["localhost/app", { registry: "localhost", repository: "app", tag: "latest", digest: null }],
    ["[::1]:5000/app:2", { registry: "[::1]:5000", repository: "app", tag: "2", digest: null }],
    [`ghcr.io/org/img@${DIGEST}`, { registry: "ghcr.io", repository: "org/img", tag: null, digest: DIGEST }],
    [`ghcr.io/org/img:1@${DIGEST}`, { registry: "ghcr.io", repository: "org/img", tag: "1", digest: DIGEST }],
    ["quay.io/a__b/c-d.e_f:T_1.x-y", { registry: "quay.io", repository: "a__b/c-d.e_f", tag: "T_1.x-y", digest: null }],
  ])("parses %s", (input, expected) => {
    expect(parseImageReference(input)).toEqual(expected);
  });

  it("writes Docker Hub references back as docker.io with the full repository", () => {
    expect(formatImageReference(parseImageReference("docker.io/node:22"))).toBe("docker.io/library/node:22");
    expect(formatImageReference(parseImageReference("127.0.0.1:5000/x/y"))).toBe("127.0.0.1:5000/x/y:latest");
    expect(formatImageReference(parseImageReference(`ghcr.io/o/i@${DIGEST}`))).toBe(`ghcr.io/o/i@${DIGEST}`);
  });

  it("tells image references from catalog and imported environment names by their '/'", () => {
    for (const name of ["debian:12", "debian:12-build", "debian:12-base", "myorg:ubuntu-24.04", "node:22"]) expect(isImageReference(name)).toBe(false);
    for (const ref of ["docker.io/library/node:22", "ghcr.io/org/img:tag", "127.0.0.1:5000/x/y:1", "library/node"]) expect(isImageReference(ref)).toBe(true);
  });

  it("suggests the full Docker Hub reference for a bare name:tag, and nothing for a name that cannot be one", () => {
    expect(suggestedImageReference("node:22")).toBe("docker.io/library/node:22");
    expect(suggestedImageReference("python")).toBe("docker.io/library/python:latest");
    expect(suggestedImageReference("Not An Image")).toBeUndefined();
    expect(suggestedImageReference("ghcr.io/a/b")).toBeUndefined();
  });

  it.each([
    ["", "empty"],
    ["ghcr.io/Org/img", "upper case in a repository"],
    ["ghcr.io/org/img:", "empty tag"],
    ["ghcr.io/org/img:-x", "tag starting with '-'"],
    [`ghcr.io/org/img:${"t".repeat(129)}`, "tag over 128 characters"],
    ["ghcr.io/org/img@sha256:abc", "short digest"],
    [`ghcr.io/org/img@sha512:${"ab".repeat(64)}`, "non-sha256 digest"],
    [`ghcr.io/org/img@${DIGEST.toUpperCase()}`, "upper-case digest"],
    ["ghcr.io/org/../img", "'..' component"],
    ["ghcr.io//img", "empty component"],
    ["ghcr.io/org/img/", "trailing slash"],
    ["/org/img", "leading slash"],
    ["ghcr.io:99999/org/img", "port out of range"],
    ["ghcr.io:0/org/img", "port zero"],
    ["gh_cr.io/org/img", "underscore in a host"],
    ["-ghcr.io/org/img", "host label starting with '-'"],
    ["[::1/org/img", "unclosed IPv6 literal"],
    ["ghcr.io/org/img name", "space"],
    ["ghcr.io/org/img\n", "newline"],
    ["ghcr.io/org/img\u0000", "NUL"],
    ["ghcr.io/org/ímg", "non-ASCII"],
    ["ghcr.io/org/img;rm -rf /", "shell characters"],
    ["ghcr.io/org/img?x=1", "URL query"],
    ["ghcr.io/org/img#x", "URL fragment"],
    [`ghcr.io/${"a".repeat(300)}`, "name over 255 characters"],
    [`ghcr.io/${"a/".repeat(5000)}b`, "reference over 512 characters"],
  ])("refuses %j (%s) with invalid_argument", (input) => {
    const err = refusal(input);
    // Messages stay one bounded line however long or strange the input.
    expect(err.message.length).toBeLessThan(400);
    expect(err.message).not.toMatch(/\n/);
  });

  it("treats only localhost, 127.0.0.0/8 and ::1 as loopback registries", () => {
    for (const r of ["localhost:5000", "127.0.0.1:5000", "127.9.8.7", "[::1]:5000"]) expect(isLoopbackRegistry(r)).toBe(true);
    for (const r of ["registry-1.docker.io", "10.0.0.1:5000", "128.0.0.1", "localhost.example.com", "127.0.0.1.nip.io", "[::2]:5000"]) {
      expect(isLoopbackRegistry(r)).toBe(false);
    }
  });
});
