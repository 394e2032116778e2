/**
 * The bubblewrap arguments every confined sandbox shares — workspaces of both backends (the
 * namespace sandbox, the VM jail) and utility sandboxes — and the descriptor layout of a
 * workspace launch. One place, so a hardening applies to every sandbox at once. Pure except
 * `hostSystemArgs`, which looks at the host's top-level directories.
 */
import fs from "node:fs";
import { SANDBOX_PATH } from "../../protocol/guest.js";

/** Child descriptors of a workspace launch: 3 the agent's socket, 4 bubblewrap's info, 5 the seccomp program, staged paths from 6. */
export const SECCOMP_FD = 5;
export const FIRST_STAGED_FD = 6;

/**
 * What every workspace's bubblewrap sandbox is confined by — the namespace sandbox and the VM
 * jail alike: its own ipc, pid, net, uts and cgroup namespaces (bubblewrap always adds mount), a
 * new session, no capability but `caps`, and an environment holding only PATH.
 */
export function confinementArgs(hostname: string, caps: readonly string[]): string[] {
  return [
    "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
    "--hostname", hostname,
    "--new-session",
    "--cap-drop", "ALL",
    ...caps.flatMap((cap) => ["--cap-add", cap]),
    "--clearenv",
    "--setenv", "PATH", SANDBOX_PATH,
  ];
}

/**
 * A fresh /proc with /proc/sys read-only. Guest root cannot write host-global sysctls anyway
 * (they need root of the host's user namespace); this also freezes the entries its own
 * namespaces own (hostname, IPC limits, user.max_*), which bubblewrap would leave writable:
 * it covers /proc/sys only when the directory itself is writable, and in a user namespace it
 * is not. The bind's source is the launcher's /proc/sys; sysctl files answer for the opener's
 * own namespaces whichever procfs they are reached through.
 */
export const PROC_ARGS = ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys"];

/** bubblewrap arguments that show the host's own programs and libraries read-only, nothing else. */
export function hostSystemArgs(): string[] {
  const args: string[] = [];
  for (const dir of ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"]) {
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(dir);
    } catch {
      continue;
    }
    // Merged-/usr hosts have /bin -> usr/bin: recreate the link, bind real directories.
    if (stat.isSymbolicLink()) args.push("--symlink", fs.readlinkSync(dir), dir);
    else args.push("--ro-bind", dir, dir);
  }
  return args;
}
