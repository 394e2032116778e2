/**
 * Workspace ids: 12 characters of base32 from 60 random bits — short enough to type, long
 * enough that nobody guesses another user's workspace. Pure apart from the random source.
 */
import { randomBytes } from "node:crypto";

const ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"; // no l, o, 0, 1: nothing to misread

export function newWorkspaceId(): string {
  const bytes = randomBytes(12);
  let id = "";
  for (const b of bytes) id += ALPHABET[b & 31];
  return id;
}

const ID_RE = new RegExp(`^[${ALPHABET}]{12}$`);

/**
 * True for any string an id could be. Such a string is never a workspace's name: a reference
 * that could be read as either an id or a name would be ambiguous.
 */
export function looksLikeWorkspaceId(value: string): boolean {
  return ID_RE.test(value);
}
