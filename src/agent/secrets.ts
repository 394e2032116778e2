/**
 * Secrets inside the sandbox: the host sends them once per sandbox start (`secrets_load`); the
 * agent writes each to /run/pyro-secrets/NAME (tmpfs, mode 0400) and keeps the values to
 * redact every output stream and to map them into a process's environment on request
 * (`secretEnv: { ENV_VAR: SECRET_NAME }`). Values are never sent back to the host.
 */
import fs from "node:fs";
import { Redactor } from "../shared/redact.js";
import { AgentFailure } from "./failure.js";
import { invalid, isRecord } from "./handler.js";
import type { Handlers } from "./handler.js";

export const SECRETS_DIR = "/run/pyro-secrets";
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

let values = new Map<string, string>();
let redactor = new Redactor([]);

/** The redactor for every output path (exec, shells, services). */
export function currentRedactor(): Redactor {
  return redactor;
}

/** Environment entries for a `{ ENV_VAR: SECRET_NAME }` mapping; unknown names are an error. */
export function secretEnv(mapping: unknown): Record<string, string> {
  if (mapping === undefined || mapping === null) return {};
  if (!isRecord(mapping)) throw invalid("secretEnv must be an object");
  const env: Record<string, string> = {};
  for (const [envVar, name] of Object.entries(mapping)) {
    if (typeof name !== "string" || !values.has(name)) throw new AgentFailure("secret_not_found", `the workspace has no secret named ${String(name)}`);
    env[envVar] = values.get(name)!;
  }
  return env;
}

export const secretHandlers: Handlers<"secrets_load"> = {
  secrets_load: (h) => {
    const incoming = h.secrets;
    if (!isRecord(incoming)) throw invalid("secrets must be an object");
    const next = new Map<string, string>();
    for (const [name, value] of Object.entries(incoming)) {
      if (!NAME_RE.test(name) || typeof value !== "string") throw invalid(`bad secret ${name}`);
      next.set(name, value);
    }
    fs.mkdirSync(SECRETS_DIR, { recursive: true, mode: 0o700 });
    for (const [name, value] of next) {
      const file = `${SECRETS_DIR}/${name}`;
      fs.rmSync(file, { force: true });
      fs.writeFileSync(file, value, { mode: 0o400, flag: "wx" });
    }
    values = next;
    redactor = new Redactor(next.values());
    return { result: { loaded: [...next.keys()] } };
  },
};
