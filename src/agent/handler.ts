/**
 * The shape of an agent request handler, shared by every feature module of the agent
 * (exec, files, shells, services, secrets). main.ts merges the modules' handler maps.
 */
import type { FrameHeader } from "../protocol/frames.js";

export interface HandlerResult {
  /** Header fields of the `result` frame (id and type are added by the dispatcher). */
  result: object;
  payload?: Buffer;
}

export type Handler = (header: FrameHeader, payload: Buffer) => Promise<HandlerResult> | HandlerResult;

export type HandlerMap = Record<string, Handler>;

export const str = (v: unknown, what: string, fail: (message: string) => Error): string => {
  if (typeof v !== "string") throw fail(`${what} must be a string`);
  return v;
};
