/**
 * Who a sandbox's processes are on the host. Every sandbox — a workspace, a utility sandbox, an
 * environment build, the VM backend's jail — lives in a user namespace whose ids map to an
 * unprivileged host identity, so guest root is never host root:
 *
 * - pyro run by root: guest ids 0…65535 map to one fixed range no host account uses
 *   (ROOT_RANGE_BASE…+65535, in the block systemd documents as unassigned). One shared range,
 *   not one per workspace: workspaces already cannot see each other's files (each sandbox
 *   mounts only its own), and a shared range keeps environment layers, snapshots and forks
 *   valid across workspaces without rewriting ownership.
 * - pyro run by an ordinary user with subordinate ids (`/etc/subuid`, `/etc/subgid`): guest
 *   root is the user, guest ids 1… are the user's subordinate ids (written with Debian's
 *   `newuidmap`/`newgidmap`), as rootless container engines do. Files guest root leaves behind
 *   belong to the user.
 * - an ordinary user without subordinate ids: guest root is the user and no other id exists, so
 *   whatever needs a second user (apt's `_apt` sandbox, `useradd`, `chown`) fails inside.
 *
 * Pure reads of /etc/subuid, /etc/subgid and /etc/passwd; cached per process.
 */
import fs from "node:fs";
import os from "node:os";
import { findExecutable } from "../../shared/executables.js";

/** First host id of the range root-run pyro maps guests to (0x70000000). */
export const ROOT_RANGE_BASE = 1_879_048_192;
/** Guest ids 0…65535: every id a Debian root filesystem uses, `nobody` (65534) included. */
export const GUEST_ID_COUNT = 65_536;

export interface IdRange {
  inside: number;
  outside: number;
  count: number;
}

export type IdentityKind = "root-range" | "subids" | "single";

export interface SandboxIdentity {
  kind: IdentityKind;
  uidMap: IdRange[];
  gidMap: IdRange[];
  /** The host uid and gid guest root is. */
  rootUid: number;
  rootGid: number;
  /** The uid and gid pyro itself runs as. */
  hostUid: number;
  hostGid: number;
  /**
   * Names the mapping. Files written under one mapping carry its host ids, so an environment
   * layer built under one identity is only valid under the same one.
   */
  key: string;
  /** One sentence for doctor and status. */
  summary: string;
  /** What does not work under this identity, or null. */
  limitation: string | null;
  /** Where the user's subordinate ids are missing or newuidmap is absent: how to fix it. */
  hint: string | null;
}

interface SubRange {
  start: number;
  count: number;
}

/** The first `/etc/subuid`-style range for `name` or `uid` that is large enough to matter. */
export function parseSubordinateIds(text: string, name: string, uid: number): SubRange | null {
  for (const line of text.split("\n")) {
    const [owner, start, count] = line.trim().split(":");
    if (!owner || start === undefined || count === undefined) continue;
    if (owner !== name && owner !== String(uid)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && s > 0 && c > 0) return { start: s, count: c };
  }
  return null;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** The identity for a given host user; `sandboxIdentity()` is this for the current process. */
export function identityFor(user: { uid: number; gid: number; name: string }, files: { subuid: string; subgid: string }, haveIdmapTools: boolean): SandboxIdentity {
  const host = { hostUid: user.uid, hostGid: user.gid };
  if (user.uid === 0) {
    const range = [{ inside: 0, outside: ROOT_RANGE_BASE, count: GUEST_ID_COUNT }];
    return {
      kind: "root-range",
      uidMap: range,
      gidMap: range,
      rootUid: ROOT_RANGE_BASE,
      rootGid: ROOT_RANGE_BASE,
      ...host,
      key: `root-${ROOT_RANGE_BASE}-${GUEST_ID_COUNT}`,
      summary: `guest ids 0-${GUEST_ID_COUNT - 1} are host ids ${ROOT_RANGE_BASE}-${ROOT_RANGE_BASE + GUEST_ID_COUNT - 1}, which no host account uses`,
      limitation: null,
      hint: null,
    };
  }
  const subUid = parseSubordinateIds(files.subuid, user.name, user.uid);
  const subGid = parseSubordinateIds(files.subgid, user.name, user.uid);
  if (subUid && subGid && haveIdmapTools) {
    // Guest root is the user; guest ids 1… are the subordinate ids, as many as a root
    // filesystem uses (and as the user has).
    const uidCount = Math.min(subUid.count, GUEST_ID_COUNT - 1);
    const gidCount = Math.min(subGid.count, GUEST_ID_COUNT - 1);
    const short = uidCount < GUEST_ID_COUNT - 1 || gidCount < GUEST_ID_COUNT - 1;
    return {
      kind: "subids",
      uidMap: [{ inside: 0, outside: user.uid, count: 1 }, { inside: 1, outside: subUid.start, count: uidCount }],
      gidMap: [{ inside: 0, outside: user.gid, count: 1 }, { inside: 1, outside: subGid.start, count: gidCount }],
      rootUid: user.uid,
      rootGid: user.gid,
      ...host,
      key: `user-${user.uid}-${subUid.start}-${uidCount}-${subGid.start}-${gidCount}`,
      summary: `guest root is ${user.name} (uid ${user.uid}); guest ids 1-${uidCount} are its subordinate ids ${subUid.start}-${subUid.start + uidCount - 1}`,
      limitation: short ? `only ${Math.min(uidCount, gidCount) + 1} guest ids exist (a Debian root uses up to 65534): files owned by higher ids show as nobody` : null,
      hint: null,
    };
  }
  const missing = !haveIdmapTools
    ? "newuidmap/newgidmap (Debian package uidmap) are not installed"
    : `${user.name} has no subordinate ids in /etc/subuid and /etc/subgid`;
  return {
    kind: "single",
    uidMap: [{ inside: 0, outside: user.uid, count: 1 }],
    gidMap: [{ inside: 0, outside: user.gid, count: 1 }],
    rootUid: user.uid,
    rootGid: user.gid,
    ...host,
    key: `single-${user.uid}-${user.gid}`,
    summary: `guest root is ${user.name} (uid ${user.uid}) and no other guest id exists (${missing})`,
    limitation: "only guest root exists: apt-get install, useradd and chown to another user fail inside workspaces",
    hint: !haveIdmapTools
      ? "Install the uidmap package (sudo apt-get install uidmap) and give the user subordinate ids (sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER)."
      : `Give ${user.name} subordinate ids: sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user.name}`,
  };
}

let cached: SandboxIdentity | undefined;

/** The identity sandboxes get when this process starts them. */
export function sandboxIdentity(): SandboxIdentity {
  if (cached) return cached;
  const info = os.userInfo();
  const uid = process.getuid?.() ?? info.uid;
  const gid = process.getgid?.() ?? info.gid;
  const tools = findExecutable("newuidmap") !== null && findExecutable("newgidmap") !== null;
  cached = identityFor({ uid, gid, name: info.username }, { subuid: readText("/etc/subuid"), subgid: readText("/etc/subgid") }, tools);
  return cached;
}

/** The host uid of guest uid `inside` (null when the guest id is not mapped). */
export function hostIdOf(map: IdRange[], inside: number): number | null {
  for (const r of map) if (inside >= r.inside && inside < r.inside + r.count) return r.outside + (inside - r.inside);
  return null;
}

/** `/proc/PID/uid_map` text for a map. */
export function mapText(map: IdRange[]): string {
  return map.map((r) => `${r.inside} ${r.outside} ${r.count}\n`).join("");
}
