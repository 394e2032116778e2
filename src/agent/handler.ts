/**
 * The shape of the agent's request handlers, typed from the protocol's `Requests` map, and the
 * one family of validators they use on what the host sends. Each feature module (exec, files,
 * patch, diff, export, shells, services, secrets) exports its part of the handler table;
 * main.ts only assembles them, and the compiler checks the table covers every request type.
 *
 * A handler sees the fields its request may carry, each typed `unknown`: the names are checked
 * at compile time, the values must be validated at run time, because the agent does not trust
 * the host (nor anything else that reaches its socket).
 */
import type { Requests, RequestType } from "../protocol/messages.js";
import { AgentFailure } from "./failure.js";

/** A request's header as it arrives: the expected field names, every value unchecked. */
export type Incoming<K extends RequestType> = { readonly id: number; readonly type: string } & { readonly [F in keyof Requests[K]["req"]]?: unknown };

/** True when the result of `K` carries bytes in its payload. */
type SendsBytes<K extends RequestType> = Requests[K] extends { payload: infer P } ? ("out" extends P ? true : false) : false;

/** What a handler answers: the result header, and the payload when the result carries bytes out. */
export type HandlerResult<K extends RequestType> = SendsBytes<K> extends true ? { result: Requests[K]["res"]; payload: Buffer } : { result: Requests[K]["res"]; payload?: undefined };

export type Handler<K extends RequestType> = (header: Incoming<K>, payload: Buffer) => Promise<HandlerResult<K>> | HandlerResult<K>;

/** A feature module's part of the table. */
export type Handlers<K extends RequestType> = { [T in K]: Handler<T> };

/** The whole table: one handler per request type the protocol declares. */
export type HandlerTable = Handlers<RequestType>;

// ---------- validators: each returns the value typed, or throws invalid_request ----------

export const invalid = (message: string): AgentFailure => new AgentFailure("invalid_request", message);

export function str(v: unknown, what: string): string {
  if (typeof v !== "string") throw invalid(`${what} must be a string`);
  return v;
}

/** A number, or `fallback` for anything else (fields the host may leave out). */
export function num(v: unknown, fallback: number): number {
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}

export function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) throw invalid(`${what} must be a whole number from ${min} to ${max}`);
  return v;
}

export function optionalInt(v: unknown, what: string, min: number, max: number): number | undefined {
  return v === undefined || v === null ? undefined : int(v, what, min, max);
}

export function nonNegativeInteger(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw invalid(`${what} must be a non-negative integer`);
  return v;
}

export function bool(v: unknown, what: string): boolean {
  if (typeof v !== "boolean") throw invalid(`${what} must be true or false`);
  return v;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** An object whose values are all strings (an environment), or throws with `message`. */
export function stringRecord(v: unknown, message: string): Record<string, string> {
  if (!isRecord(v)) throw invalid(message);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(v)) {
    if (typeof value !== "string") throw invalid(message);
    out[name] = value;
  }
  return out;
}

/** A non-empty array of strings (an argv), or undefined. */
export function argvOf(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.length > 0 && v.every((a): a is string => typeof a === "string") ? v : undefined;
}
