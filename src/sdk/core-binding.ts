/**
 * Which core composition root a `Pyro` forwards to. Kept outside the class so the facade has no
 * public field for it and the package entry exports no way to reach it: only modules of this
 * package (sdk/internal.ts) look it up. A WeakMap, so a dropped facade takes its core with it.
 */
import { PyroError } from "../shared/errors.js";
import type { Workspaces } from "../core/workspaces.js";

const cores = new WeakMap<object, Workspaces>();

/** Called once, by the facade's constructor. */
export function bindCore(facade: object, core: Workspaces): void {
  cores.set(facade, core);
}

/** The core a facade was built with. */
export function boundCore(facade: object): Workspaces {
  const core = cores.get(facade);
  if (!core) throw new PyroError("internal_error", "no workspaces core is bound to this object");
  return core;
}
