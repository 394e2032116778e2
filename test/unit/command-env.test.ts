// The environment a workspace's programs start with: sandbox defaults, then an image's Env,
// then the call's own variables.
import { describe, it, expect } from "vitest";
import { commandEnv, imageEnv } from "../../src/core/command-env.js";
import { SANDBOX_PATH } from "../../src/protocol/guest.js";

describe("command environment", () => {
  it("reads an image's Env list, dropping entries a runtime would not set, the last of a name winning", () => {
    expect(imageEnv(["PATH=/opt/x/bin:/bin", "A=1=2", "EMPTY=", "no-equals", "=value", "BAD-NAME=x", "A=3"])).toEqual({
      PATH: "/opt/x/bin:/bin",
      A: "3",
      EMPTY: "",
    });
  });

  it("puts the image's PATH over the sandbox default and the call's variables over the image's", () => {
    const record = { environment_env: { PATH: "/opt/x/bin:/bin", GREETING: "image" } };
    expect(commandEnv(record)).toMatchObject({ PATH: "/opt/x/bin:/bin", GREETING: "image", HOME: "/root" });
    expect(commandEnv(record, { GREETING: "call" }).GREETING).toBe("call");
  });

  it("leaves a workspace without an image on the sandbox defaults", () => {
    expect(commandEnv({}, { X: "1" })).toMatchObject({ PATH: SANDBOX_PATH, X: "1" });
  });
});
