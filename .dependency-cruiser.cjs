// The layers of src/ (docs/architecture.md), enforced: no import cycles, and no import that runs up
// a layer. A layer may import any layer below it (skips are allowed); `agent/` runs inside the
// sandbox and sees only the wire protocol and shared helpers. Run by `npm run lint`.
//
// Floors, top first:
//   index.ts                          the package entry (SDK + createServer)
//   cli/                              the pyro command
//   mcp/                              the MCP server
//   contract.ts                       derived from ops/ (names, flags), plus MCP profiles and modes
//   ops/                              one declaration per public operation
//   sdk/                              Pyro facade and Workspace handle
//   core/                             workspaces: lifecycle, exec, content, services, ...
//   runtime/ (backend.ts, backends.ts, namespace/, vm/)   the two backends
//   environments/                     layer store, builds, imports (built in confined sandboxes)
//   runtime/confine/, runtime/network/ the confinement kit both backends and builds compose
//   protocol/                         the host <-> agent wire
//   shared/                           one helper per cross-cutting concern
const FLOORS = [
  ["shared", "^src/shared/"],
  ["protocol", "^src/protocol/"],
  ["kit", "^src/runtime/(confine|network)/"],
  ["environments", "^src/environments/"],
  ["backends", "^src/runtime/(backend|backends|agent-runtime)\\.ts$|^src/runtime/(namespace|vm)/"],
  ["core", "^src/core/"],
  ["sdk", "^src/sdk/"],
  ["ops", "^src/ops/"],
  ["contract", "^src/contract\\.ts$"],
  ["mcp", "^src/mcp/"],
  ["cli", "^src/cli/"],
  ["entry", "^src/index\\.ts$"],
];

const upward = FLOORS.map(([name, path], i) => ({
  name: `no-import-up-from-${name}`,
  comment: `${name} may import only the layers below it`,
  severity: "error",
  from: { path },
  to: { path: "^src/", pathNot: [path, ...FLOORS.slice(0, i).map(([, p]) => p)] },
}));

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "import cycles (type-only ones included) make layers meaningless",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    ...upward,
    {
      name: "agent-sees-only-the-wire",
      comment: "the in-sandbox agent is bundled alone: protocol/ and shared/ only",
      severity: "error",
      from: { path: "^src/agent/" },
      to: { path: "^src/", pathNot: ["^src/agent/", "^src/protocol/", "^src/shared/"] },
    },
    {
      name: "nothing-imports-the-agent",
      comment: "the host reaches the agent only through the protocol",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/agent/" },
      to: { path: "^src/agent/" },
    },
    {
      name: "backends-only-through-the-interface",
      comment: "above runtime/, a backend is reached through runtime/backend.ts and runtime/backends.ts",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/runtime/" },
      to: { path: "^src/runtime/(namespace|vm)/" },
    },
    {
      name: "not-to-unresolvable",
      severity: "error",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: "node_modules" },
    // Node built-ins and packages are not layers.
    includeOnly: "^src/",
  },
};
