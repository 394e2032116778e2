/**
 * The one error type of pyro. Every failure a user can cause or meet carries a stable `code`
 * (part of the public contract: CLI `--json`, SDK `PyroError.code`, MCP `isError` results) and a
 * one-sentence `hint` saying what to do next. Pure; no I/O.
 */

/** Stable error codes. Renaming one is a breaking change; add new ones at the end of a group. */
export const ERROR_CODES = {
  // input
  invalid_argument: "An argument has an invalid value.",
  usage_error: "The command line could not be parsed (unknown flag, missing argument).",
  invalid_label: "A label is not KEY=VALUE with a valid key.",
  invalid_name: "A workspace name is not valid.",
  invalid_timeout: "A timeout is not a positive number.",
  // workspaces
  workspace_not_found: "No workspace has this id or name.",
  workspace_name_ambiguous: "More than one workspace matches this reference.",
  workspace_name_taken: "Another live workspace already uses this name.",
  workspace_stopped: "The workspace is not running.",
  workspace_busy: "Another caller holds the workspace lock.",
  workspace_failed: "The workspace's sandbox died; see the reason.",
  workspace_expired: "The workspace's TTL has passed.",
  workspace_incompatible: "The workspace was made for another sandbox identity (an earlier pyro that ran sandboxes as host root, or another user) and cannot start here.",
  // seeding and archives
  seed_path_not_found: "The seed path does not exist.",
  seed_path_invalid: "The seed path is neither a directory nor a .tar/.tar.gz/.tgz archive.",
  archive_unsafe_entry: "An archive entry would escape its destination or is not allowed.",
  archive_too_large: "An archive exceeds the size or entry-count limit.",
  // workspace content
  path_outside_workspace: "A path is outside /workspace, or a symbolic link on it leads outside.",
  path_not_found: "A path inside the workspace does not exist.",
  patch_failed: "A patch does not apply; nothing was changed.",
  output_exists: "The export destination already exists on the host.",
  snapshot_not_found: "No snapshot has this name.",
  snapshot_exists: "A snapshot with this name already exists.",
  disk_limit_exceeded: "A write would take /workspace past the workspace's disk limit (disk_mib), or a command left it over a watched limit.",
  // services, shells, secrets
  shell_not_found: "No shell has this id in the workspace.",
  service_not_found: "No service has this name in the workspace.",
  service_exists: "A service with this name is already running.",
  secret_not_found: "The workspace has no secret with this name.",
  invalid_secret: "A secret is not NAME=VALUE with a valid name, or its file cannot be read.",
  // network
  port_in_use: "The host port asked for a published port is already in use on 127.0.0.1.",
  publish_not_allowed: "The workspace's network policy does not allow published ports (it needs egress+published-ports).",
  network_unavailable: "Workspace networking could not be set up on this host (slirp4netns, nft, nsenter or perl missing or failing, or /dev/net/tun closed to this user).",
  // environments
  environment_unknown: "No environment has this name.",
  environment_not_installed: "The environment is known but not built on this machine.",
  environment_in_use: "The environment is used by a workspace.",
  environment_build_failed: "Building the environment failed.",
  // images from registries
  image_not_found: "The registry has no such repository, tag or digest.",
  image_unauthorized: "The registry refused access: it needs credentials and none were found, or it refused the ones given.",
  image_invalid: "The registry sent a manifest, index or config that is malformed or of a kind pyro does not support.",
  image_platform_missing: "The image has no linux/amd64 variant.",
  image_digest_mismatch: "Content the registry sent does not match its digest or declared size; it was not stored.",
  image_too_large: "A manifest, config, layer or the whole image is larger than pyro's limit.",
  registry_unreachable: "The registry could not be reached, timed out, failed, or redirected somewhere pyro does not follow.",
  // host and sandbox
  host_unsupported: "This host cannot run the requested backend.",
  backend_unavailable: "This backend cannot run on this host (e.g. the vm backend without QEMU or its guest kit).",
  sandbox_start_failed: "The sandbox could not be started.",
  agent_unreachable: "The in-sandbox agent did not answer.",
  agent_protocol_error: "The in-sandbox agent sent something that is not valid protocol.",
  exec_failed: "The command could not be started inside the workspace.",
  internal_error: "An unexpected internal error.",
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface PyroErrorOptions {
  /** One sentence telling the caller what to do next. */
  hint?: string;
  /** Structured details safe to show to a model (never secrets). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class PyroError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: PyroErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PyroError";
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }

  /** The shape every surface renders: CLI `--json`, MCP error results. */
  toJSON(): { code: ErrorCode; message: string; hint?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint ? { hint: this.hint } : {}),
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

/** Wraps anything thrown into a PyroError so surfaces only ever render one shape. */
export function asPyroError(err: unknown): PyroError {
  if (err instanceof PyroError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new PyroError("internal_error", message, { cause: err });
}
