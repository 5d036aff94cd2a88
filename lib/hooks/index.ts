/**
 * OCI hooks. Runtime-namespace hooks (prestart, createRuntime, poststart,
 * poststop) run from the runtime process; container-namespace hooks
 * (createContainer, startContainer) run from the container's init, which is a
 * forked child that may only make synchronous libc calls, so it has its own
 * fork/exec/wait loop here.
 */
import { readSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { HookError } from '../errors';
import type { Hook, Hooks, State } from '../spec/types';
import { sleepSync } from '../sleep';

export type HookKind = keyof Hooks;

const OUTPUT_LIMIT = 4096;

function describeExit(exitCode: number | null, signal: number | string | null): string {
  return exitCode !== null ? `exited with status ${exitCode}` : `killed by signal ${signal}`;
}

function trimOutput(out: string): string {
  const s = out.trim();
  return s ? `: ${s.length > 500 ? s.slice(-500) : s}` : '';
}

/**
 * run the hooks of one kind in the runtime's namespaces, in order; the first
 * failure throws, unless `warn` is given: then each failure is reported and
 * the remaining hooks still run (runtime-spec, poststart and poststop)
 */
export function runHooks(kind: HookKind, hooks: Hooks | undefined, state: State, warn?: (message: string) => void): void {
  const json = JSON.stringify(state);
  for (const h of hooks?.[kind] ?? []) {
    try {
      runHook(kind, h, json);
    } catch (e) {
      if (!warn) throw e;
      warn((e as Error).message);
    }
  }
}

function runHook(kind: HookKind, h: Hook, stateJson: string): void {
  const args = h.args?.length ? h.args : [h.path];
  // required here: node:child_process costs ~10 ms to load, and most containers have no runtime hooks
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const r = spawnSync(h.path, args.slice(1), {
    argv0: args[0],
    env: Object.fromEntries((h.env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])),
    input: stateJson,
    timeout: h.timeout ? h.timeout * 1000 : undefined,
    killSignal: 'SIGKILL',
    maxBuffer: 1 << 20,
    encoding: 'utf8',
  });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ETIMEDOUT') throw new HookError(kind, h.path, `timed out after ${h.timeout}s`);
    throw new HookError(kind, h.path, `cannot run: ${code ?? r.error.message}`);
  }
  if (r.status !== 0) throw new HookError(kind, h.path, describeExit(r.status, r.signal) + trimOutput(r.stderr || r.stdout));
}


/**
 * Run hooks from a forked child (container init): fork, exec, feed the state
 * on stdin, wait with the hook's timeout. Synchronous libc calls only.
 */
export function runHooksInChild(kind: HookKind, hooks: Hooks | undefined, state: State): void {
  const list = hooks?.[kind] ?? [];
  if (!list.length) return;
  const json = Buffer.from(JSON.stringify(state));
  for (const h of list) runHookInChild(kind, h, json);
}

function runHookInChild(kind: HookKind, h: Hook, stateJson: Buffer): void {
  const [inR, inW] = libc.pipe2(C.O_CLOEXEC);
  const [outR, outW] = libc.pipe2(C.O_CLOEXEC | C.O_NONBLOCK);
  const pid = libc.fork();
  if (pid === 0) {
    try {
      libc.dup2(inR, 0);
      libc.dup2(outW, 1);
      libc.dup2(outW, 2);
      libc.fcntl(1, C.F_SETFL, libc.fcntl(1, C.F_GETFL) & ~C.O_NONBLOCK);
      libc.resetSignals();
      libc.execve(h.path, h.args?.length ? h.args : [h.path], h.env ?? []);
    } catch {
      libc._exit(127);
    }
  }
  libc.close(inR);
  libc.close(outW);
  try {
    libc.write(inW, stateJson);
  } catch {
    /* the hook need not read its stdin */
  }
  libc.close(inW);
  const deadline = h.timeout ? Date.now() + h.timeout * 1000 : Infinity;
  const chunk = Buffer.alloc(OUTPUT_LIMIT);
  let output = '';
  for (;;) {
    try {
      const n = readSync(outR, chunk, 0, chunk.length, null);
      if (n > 0) output = (output + chunk.toString('utf8', 0, n)).slice(-OUTPUT_LIMIT);
    } catch {
      /* EAGAIN: nothing yet */
    }
    const r = libc.waitpid(pid, C.WNOHANG);
    if (r) {
      libc.close(outR);
      if (r.exitCode === 127 && !output) throw new HookError(kind, h.path, 'cannot run (exec failed)');
      if (r.exitCode !== 0) throw new HookError(kind, h.path, describeExit(r.exitCode, r.signal) + trimOutput(output));
      return;
    }
    if (Date.now() > deadline) {
      libc.kill(pid, 9);
      libc.waitpid(pid);
      libc.close(outR);
      throw new HookError(kind, h.path, `timed out after ${h.timeout}s`);
    }
    sleepSync(1);
  }
}
