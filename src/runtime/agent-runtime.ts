/**
 * The agent runtime as the layers above runtime/ reach it: where the agent bundle is, and the
 * package root it is found from. Assembled in confine/agent-runtime.ts, which every sandbox
 * (workspaces of both backends, utility sandboxes) binds from.
 */
export { agentBundlePath } from "./confine/agent-runtime.js";
export { packageRoot } from "../shared/package.js";
