/**
 * How a host process enters a sandbox's network namespace (with util-linux `nsenter`), shared
 * by pyro and the DNS forwarder.
 *
 * Every sandbox lives in its own user namespace, which owns its network namespace. Root may
 * join that network namespace directly. An ordinary user may not: setns(CLONE_NEWNET) needs
 * CAP_SYS_ADMIN over the namespace, which the user has only inside the sandbox's user namespace,
 * where it is guest root under every identity it gets (`../confine/identity.ts`). So when pyro
 * is not root, every entry joins the user namespace as well; nft, ip and the socket binder then
 * run as guest root with the capabilities they need over the sandbox's network, and nothing
 * more: the host's files still see the user.
 *
 * `--preserve-credentials` keeps the user's own ids, which already are guest root's. Without it
 * nsenter drops supplementary groups and switches to uid 0, and dropping groups fails in a user
 * namespace that denies setgroups (the identity of a user without subordinate ids).
 *
 * Descriptors: the child gets the network namespace as fd 3 and, when entered, the user
 * namespace as fd 4 (both opened and verified by the caller; see `openNamespaces`).
 */

export const NETNS_CHILD_FD = 3;
export const USERNS_CHILD_FD = 4;

/** Whether this process must join a sandbox's user namespace to reach its network (it is not root). */
export function entersUserNamespace(): boolean {
  return process.getuid?.() !== 0;
}

/** nsenter's options for entering the network namespace at fd 3 (and the user namespace at fd 4 when `user`). */
export function nsenterArgs(user: boolean): string[] {
  const net = `--net=/proc/self/fd/${NETNS_CHILD_FD}`;
  return user ? [`--user=/proc/self/fd/${USERNS_CHILD_FD}`, "--preserve-credentials", net] : [net];
}

/** nsenter's options for entering only the user namespace at fd 4 (slirp4netns: see slirp.ts). */
export function nsenterUserArgs(): string[] {
  return [`--user=/proc/self/fd/${USERNS_CHILD_FD}`, "--preserve-credentials"];
}
