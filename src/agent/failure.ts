/**
 * The agent's error: a protocol error code plus a message, sent back as an `error` frame.
 * The host maps these codes onto its own PyroError codes. Pure.
 */
import type { AgentErrorCode } from "../protocol/messages.js";

export class AgentFailure extends Error {
  constructor(
    readonly code: AgentErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}
