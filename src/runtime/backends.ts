/**
 * Which backend a workspace lives on: the names a caller may ask for, the default
 * (`PYRO_BACKEND`, else namespace), `auto` turned into a concrete backend, and the backends
 * themselves, each made on first use; plus what the layers above ask of a backend beyond its
 * sandboxes (the VM host report for doctor, pruning images derived from environments). The VM
 * backend's code is loaded only when something asks for it, so namespace workspaces never pay
 * for it, nor fail because it cannot run here.
 */
import type { Backend, BackendName, BackendRequest } from "./backend.js";
import { BACKEND_NAMES } from "./backend.js";
import { NamespaceBackend } from "./namespace/backend.js";
import { PyroError } from "../shared/errors.js";
import type { VmHostReport } from "./vm/host.js";

export type { VmHostReport } from "./vm/host.js";

/** Everything `--backend`, the SDK's `backend` option, MCP's `backend` argument and `PYRO_BACKEND` accept. */
export const BACKEND_REQUESTS: readonly BackendRequest[] = [...BACKEND_NAMES, "auto"];

/** Without `--backend` or `PYRO_BACKEND`: the namespace backend, which starts in milliseconds and runs anywhere pyro runs. */
export const DEFAULT_BACKEND: BackendName = "namespace";

function checked(value: unknown, what: string): BackendRequest {
  if (typeof value === "string" && (BACKEND_REQUESTS as readonly string[]).includes(value)) return value as BackendRequest;
  throw new PyroError("invalid_argument", `${what} must be one of ${BACKEND_REQUESTS.join(", ")}, got ${JSON.stringify(String(value)).slice(0, 60)}`, {
    hint: "namespace: bubblewrap namespaces (default); vm: a QEMU microVM with its own kernel; auto: vm when guests boot with KVM on this host, else namespace.",
  });
}

/**
 * What a create asks for: the option when given, else `PYRO_BACKEND`, else the default. An
 * invalid value (either) is `invalid_argument`. Cheap and synchronous, so callers refuse a bad
 * value before they make anything.
 */
export function backendRequest(option: unknown, env: NodeJS.ProcessEnv = process.env): BackendRequest {
  if (option !== undefined) return checked(option, "backend");
  const fromEnv = env.PYRO_BACKEND;
  if (fromEnv !== undefined && fromEnv !== "") return checked(fromEnv, "PYRO_BACKEND");
  return DEFAULT_BACKEND;
}

/** Where the default came from, for `pyro doctor`. */
export function backendRequestSource(env: NodeJS.ProcessEnv = process.env): "PYRO_BACKEND" | "default" {
  return env.PYRO_BACKEND ? "PYRO_BACKEND" : "default";
}

/**
 * The backend a request means on this host (the one place `auto` is decided: see
 * runtime/vm/host.ts `resolveBackend`). `vm` fails with backend_unavailable when this host
 * cannot run it. `namespace` never loads the VM code.
 */
export async function resolveBackendRequest(request: BackendRequest, home: string): Promise<BackendName> {
  if (request === "namespace") return "namespace";
  const { resolveBackend } = await import("./vm/host.js");
  return resolveBackend(request, home);
}

/** What this host offers the VM backend; `probe` boots a probe guest to tell whether KVM works. */
export async function vmHostReport(home: string, options: { probe?: boolean } = {}): Promise<VmHostReport> {
  const host = await import("./vm/host.js");
  return host.vmHostReport(home, options);
}

/**
 * Removes the images backends derived from environment layers (the VM backend's root disks)
 * that none of `layerSets` needs any more; returns the bytes freed.
 */
export async function pruneBackendImages(home: string, layerSets: string[][]): Promise<number> {
  const { pruneRootImages } = await import("./vm/kit.js");
  return pruneRootImages(home, layerSets);
}

export type BackendFactories = { [N in BackendName]?: () => Backend | Promise<Backend> };

const DEFAULT_FACTORIES: { [N in BackendName]: (home: string) => Promise<Backend> } = {
  namespace: async () => new NamespaceBackend(),
  vm: async (home) => new (await import("./vm/backend.js")).VmBackend(home),
};

/**
 * One backend per name, made on first use and then shared: a workspace manager holds one set
 * and uses, for each workspace, the backend its record names. `factories` replaces backends
 * (tests use fakes).
 */
export class BackendSet {
  private readonly made = new Map<BackendName, Promise<Backend>>();

  constructor(
    private readonly home: string,
    private readonly factories: BackendFactories = {},
  ) {}

  get(name: BackendName): Promise<Backend> {
    const existing = this.made.get(name);
    if (existing) return existing;
    if (!(BACKEND_NAMES as readonly string[]).includes(name)) {
      // A record written by a newer pyro, or edited by hand.
      return Promise.reject(new PyroError("backend_unavailable", `this pyro has no backend named ${JSON.stringify(String(name))}`, { hint: `Backends: ${BACKEND_NAMES.join(", ")}.` }));
    }
    const made = Promise.resolve().then(() => this.factories[name]?.() ?? DEFAULT_FACTORIES[name](this.home));
    this.made.set(name, made);
    // A backend whose code failed to load is tried again next time rather than failing forever.
    made.catch(() => this.made.delete(name));
    return made;
  }
}
