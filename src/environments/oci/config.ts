/**
 * The image config (OCI image config / Docker container config JSON), read for what pyro
 * needs from it: the platform it was built for (a single-platform image for another
 * architecture is refused here, since no index said so), the layers' uncompressed digests
 * (one per layer, as the spec requires), and the run-time settings a sandbox honours later
 * (`Env`, `WorkingDir`, `User`, `Entrypoint`, `Cmd`). Pure; no I/O.
 */
import { PyroError } from "../../shared/errors.js";
import { SANDBOX_PLATFORM, invalid, parseJsonObject } from "./manifest.js";
import { isSha256Digest } from "./reference.js";

export interface ImageConfig {
  os: string;
  architecture: string;
  /** `rootfs.diff_ids`: sha256 of each layer's uncompressed tar, bottom first. */
  diffIds: string[];
  env: string[];
  workingDir: string | null;
  user: string | null;
  entrypoint: string[] | null;
  cmd: string[] | null;
}

export function parseImageConfig(bytes: Uint8Array, layerCount: number, reference: string): ImageConfig {
  const what = `the config of ${reference}`;
  const doc = parseJsonObject(bytes, what);
  const os = typeof doc.os === "string" ? doc.os : "";
  const architecture = typeof doc.architecture === "string" ? doc.architecture : "";
  if (os !== SANDBOX_PLATFORM.os || architecture !== SANDBOX_PLATFORM.architecture) {
    const found = `${os || "?"}/${architecture || "?"}`.slice(0, 80);
    throw new PyroError("image_platform_missing", `${reference} is built for ${found}, not ${SANDBOX_PLATFORM.os}/${SANDBOX_PLATFORM.architecture}`, {
      hint: "Use an image built for linux/amd64; pyro's sandboxes run linux/amd64 only.",
      details: { reference, platform: "linux/amd64", platforms: [found] },
    });
  }
  const rootfs = isObject(doc.rootfs) ? doc.rootfs : undefined;
  if (!rootfs || rootfs.type !== "layers" || !Array.isArray(rootfs.diff_ids)) throw invalid(what, "rootfs is not {type: layers, diff_ids: [...]}");
  const diffIds = rootfs.diff_ids;
  if (!diffIds.every(isSha256Digest)) throw invalid(what, "a rootfs.diff_ids entry is not a sha256 digest");
  if (diffIds.length !== layerCount) throw invalid(what, `it lists ${diffIds.length} layer digests for ${layerCount} layers`);
  const run = isObject(doc.config) ? doc.config : {};
  return {
    os,
    architecture,
    diffIds,
    env: stringList(run.Env) ?? [],
    workingDir: typeof run.WorkingDir === "string" && run.WorkingDir !== "" ? run.WorkingDir : null,
    user: typeof run.User === "string" && run.User !== "" ? run.User : null,
    entrypoint: stringList(run.Entrypoint),
    cmd: stringList(run.Cmd),
  };
}

function stringList(value: unknown): string[] | null {
  return Array.isArray(value) && value.every((item) => typeof item === "string") ? (value as string[]) : null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
