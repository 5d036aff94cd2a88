/**
 * The environment of the Node processes koci starts for itself (the zygote,
 * the per-call helper, the CLI's --single-threaded re-exec): the caller's,
 * without NODE_EXTRA_CA_CERTS. Node reads and parses that file at every
 * start, before any script runs (~40 ms for Debian's CA bundle), and koci
 * makes no TLS connection. The CLI's `#!` line drops it the same way.
 * Containers and hooks never see koci's environment either way: they get
 * the config's.
 */
export const UNUSED_NODE_ENV = ['NODE_EXTRA_CA_CERTS'] as const;

export function ownNodeEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of UNUSED_NODE_ENV) delete out[k];
  return out;
}
