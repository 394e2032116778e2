// Which credentials pyro finds in a user's Docker configuration for a registry: the forms
// `docker login` writes, Docker Hub's several names, and a broken file.
import { describe, it, expect, beforeEach, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { dockerCredentials } from "../../src/environments/oci/auth.js";
import { PyroError } from "../../src/shared/errors.js";

describe("credentials from the Docker configuration", () => {
  let dir: string;
  const env = () => ({ DOCKER_CONFIG: dir, PATH: "/nonexistent" });
  const write = (config: unknown) => fs.writeFileSync(path.join(dir, "config.json"), typeof config === "string" ? config : JSON.stringify(config));
  const b64 = (s: string) => Buffer.from(s).toString("base64");

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyro-docker-config-"));
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("finds nothing without a configuration file", async () => {
    expect(await dockerCredentials("ghcr.io", env())).toBeUndefined();
  });

  it("reads a base64 auth entry keyed by host, or by URL, with a colon in the password", async () => {
    write({ auths: { "ghcr.io": { auth: b64("me:pa:ss") }, "https://127.0.0.1:5000/v2/": { auth: b64("local:pw") } } });
    expect(await dockerCredentials("ghcr.io", env())).toEqual({ username: "me", password: "pa:ss" });
    expect(await dockerCredentials("127.0.0.1:5000", env())).toEqual({ username: "local", password: "pw" });
    expect(await dockerCredentials("127.0.0.1:5001", env())).toBeUndefined();
  });

  it("finds Docker Hub's entry under the key docker login writes for it", async () => {
    write({ auths: { "https://index.docker.io/v1/": { username: "hubuser", password: "hubpw" } } });
    expect(await dockerCredentials("registry-1.docker.io", env())).toEqual({ username: "hubuser", password: "hubpw" });
  });

  it("falls back to auths when the configured credential helper is not installed", async () => {
    write({ credsStore: "desktop", auths: { "ghcr.io": { auth: b64("me:pw") } } });
    expect(await dockerCredentials("ghcr.io", env())).toEqual({ username: "me", password: "pw" });
  });

  it("ignores identity-token-only entries and refuses a file that is not JSON with image_unauthorized", async () => {
    write({ auths: { "ghcr.io": { identitytoken: "refresh" } } });
    expect(await dockerCredentials("ghcr.io", env())).toBeUndefined();
    write("{ not json");
    const err = await dockerCredentials("ghcr.io", env()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PyroError);
    expect((err as PyroError).code).toBe("image_unauthorized");
  });
});
