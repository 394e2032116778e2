/**
 * Facts about the inside of every sandbox that the host and guest code agree on: the command
 * search path, the environment a sandbox's programs start with, and the fixed addresses of the
 * user-mode network (slirp4netns's defaults with --configure, which the VM guest configures by
 * hand to match). Changing one changes what programs in existing environments see. Pure constants.
 */

export const SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The guest's own address on the user-mode network; published ports are forwarded to it. */
export const GUEST_ADDRESS = "10.0.2.100";
/** The gateway; slirp4netns maps it to the host's 127.0.0.1 unless --disable-host-loopback. */
export const HOST_GATEWAY = "10.0.2.2";
/** slirp4netns's DNS proxy, which forwards to the host's resolvers. */
export const SLIRP_DNS = "10.0.2.3";

/**
 * The environment a program started in a sandbox gets (commands, services, shells): the
 * sandbox's PATH, root's home and a UTF-8 locale, then `extra` (the caller's, which wins).
 */
export function guestEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: SANDBOX_PATH, HOME: "/root", LANG: "C.UTF-8", ...extra };
}

/**
 * The environment variable every process of one exec carries, with the exec's marker as its
 * value: the agent's timeout sweep finds a command's whole tree by it, and so does the host's
 * when the agent is too starved to (runtime/confine/exec-kill.ts).
 */
export const EXEC_MARKER_VAR = "PYRO_EXEC_ID";
