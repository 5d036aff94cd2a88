/**
 * How koci starts its own Node processes: the CLI's `#!` line and its
 * --single-threaded re-exec, the zygote, the per-call helper, the build's
 * code-cache maker.
 *
 * Flags: --single-threaded (see DESIGN.md: a Node process can fork only
 * then), nothing else. V8 takes a code cache only under the flags it was made
 * with, so every start of a koci process and the bundle's cache maker use
 * exactly these (the `#!` line in lib/cli/main.ts spells them out; a test
 * checks it). Every flag is paid at every start: --expose-gc, for a scavenge
 * before each fork, made the CLI's start ~2 ms slower here, more than the
 * scavenge saved.
 *
 * Environment: the caller's, without NODE_EXTRA_CA_CERTS. Node reads and
 * parses that file at every start, before any script runs (~40 ms for
 * Debian's CA bundle), and koci makes no TLS connection. Containers and hooks
 * never see koci's environment either way: they get the config's.
 */
export const NODE_FLAGS = ['--single-threaded'] as const;

export const UNUSED_NODE_ENV = ['NODE_EXTRA_CA_CERTS'] as const;

export function ownNodeEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of UNUSED_NODE_ENV) delete out[k];
  return out;
}
