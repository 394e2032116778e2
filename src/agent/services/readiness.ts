/**
 * Readiness probes for services: how the agent decides a started service is ready to use (a
 * file appears, a TCP port accepts, an HTTP URL answers below 400, a command exits 0). One
 * probe attempt per call; the polling, deadline and process lifecycle are services.ts's concern.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import path from "node:path";
import { invalid, isRecord } from "../handler.js";
import { EXEC_MARKER_VAR, killExecTree } from "../exec.js";
import { spawnExpendable } from "../expendable.js";
import type { Readiness } from "../../protocol/messages.js";

/** One HTTP or TCP attempt never waits longer than this, however slow the service is to answer. */
const CONNECT_ATTEMPT_MS = 2000;
/** A readiness command is killed after the poll interval, and never runs longer than this. */
const COMMAND_ATTEMPT_MAX_MS = 5000;

const nonEmptyString = (v: unknown): v is string => typeof v === "string" && v.length > 0;

/** Checks a readiness spec from the wire; null means "no readiness check". */
export function parseReadiness(value: unknown): Readiness | null {
  if (value === null || value === undefined) return null;
  if (!isRecord(value)) throw invalid("readiness must be an object or null");
  const r = value;
  switch (r.type) {
    case "file":
      if (!nonEmptyString(r.path)) throw invalid("file readiness needs a path");
      return { type: "file", path: r.path };
    case "tcp": {
      const port = r.port;
      if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) throw invalid("tcp readiness needs a port between 1 and 65535");
      if (r.host !== undefined && r.host !== null && !nonEmptyString(r.host)) throw invalid("tcp readiness host must be a string");
      return { type: "tcp", port, ...(nonEmptyString(r.host) ? { host: r.host } : {}) };
    }
    case "http": {
      const text = r.url;
      let url: URL;
      try {
        if (typeof text !== "string") throw new TypeError("not a string");
        url = new URL(text);
      } catch {
        throw invalid("http readiness needs a valid url");
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") throw invalid("http readiness url must start with http:// or https://");
      return { type: "http", url: text };
    }
    case "command":
      if (!nonEmptyString(r.command)) throw invalid("command readiness needs a command");
      return { type: "command", command: r.command };
    default:
      throw invalid("readiness type must be one of file, tcp, http, command");
  }
}

export interface ProbeContext {
  cwd: string;
  /** The service's own environment (including its secrets and marker), for command probes. */
  env: Record<string, string>;
  intervalMs: number;
}

/** One readiness attempt: true when the service is ready. Never rejects. */
export function probe(readiness: Readiness, ctx: ProbeContext): Promise<boolean> {
  switch (readiness.type) {
    case "file":
      return Promise.resolve(fs.existsSync(path.resolve(ctx.cwd, readiness.path)));
    case "tcp":
      return probeTcp(readiness.host ?? "127.0.0.1", readiness.port);
    case "http":
      return probeHttp(readiness.url);
    case "command":
      return probeCommand(readiness.command, ctx, Math.min(ctx.intervalMs, COMMAND_ATTEMPT_MAX_MS));
  }
}

function probeTcp(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(CONNECT_ATTEMPT_MS, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

function probeHttp(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(ok);
    };
    // A fresh connection per attempt (agent: false): a kept-alive socket to a service that
    // restarted would tell us nothing. A dev server's certificate is self-signed more often than
    // not, and answering at all is what readiness asks.
    const onResponse = (res: http.IncomingMessage) => {
      res.resume();
      done((res.statusCode ?? 500) < 400);
    };
    const req = new URL(url).protocol === "https:" ? https.get(url, { agent: false, rejectUnauthorized: false }, onResponse) : http.get(url, { agent: false }, onResponse);
    req.once("error", () => done(false));
    // Covers connecting, sending and waiting for the status line alike.
    const timer = setTimeout(() => done(false), CONNECT_ATTEMPT_MS);
  });
}

function probeCommand(command: string, ctx: ProbeContext, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    // Its own exec marker, so a slow probe's whole tree can be killed without touching the service.
    const marker = randomBytes(8).toString("hex");
    const child = spawnExpendable(() => spawn("/bin/sh", ["-c", command], { cwd: ctx.cwd, env: { ...ctx.env, [EXEC_MARKER_VAR]: marker }, stdio: "ignore", detached: true }));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killExecTree(child.pid, marker);
    }, timeoutMs);
    child.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (timedOut) killExecTree(undefined, marker);
      resolve(!timedOut && code === 0);
    });
  });
}
