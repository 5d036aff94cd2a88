/**
 * Compiled seccomp programs kept on disk, for the CLI: each `koci create` is
 * a new process, and building a profile like Docker's through libseccomp
 * costs it ~8 ms; a profile seen before costs a small file read instead. The
 * library's zygote reads and writes the same entries (zygote.ts), so a new
 * Runtime's first container does not wait for the compile either.
 *
 * - Entries live in the state root (`<root>/@cache/seccomp/`; `@` is not
 *   allowed in container IDs, and `list` only counts directories with a
 *   state file), readable by root alone like the rest of it.
 * - An entry is named by a hash of its key — the profile text, libseccomp's
 *   version, the architecture, the kernel and this build of koci — and holds
 *   the key whole: it is used only when every byte matches, so a changed
 *   profile, libseccomp, kernel or koci compiles afresh.
 * - Programs are written only once a container was created with them
 *   (keep()), so a create that fails leaves nothing; a cache that cannot be
 *   read or written costs the compile, never the create.
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import * as S from '../../bindings/seccomp';
import { packageRoot } from '../paths';
import type { CompiledSeccomp, SeccompMemo } from './seccomp';

interface Entry {
  key: string;
  bpf: string;
  loadFlags: number;
  notify: boolean;
  skipped: string[];
}

/**
 * The entry's file name: two 32-bit FNV-1a hashes of the key (different
 * offset bases) over its UTF-8 bytes taken four at a time, and its length.
 * The full key inside decides, so a collision only costs a compile;
 * node:crypto would cost a CLI start ~9 ms to load, and a loop over the key's
 * characters ~1.7 ms (cold code, ~6 KB for Docker's profile) against ~0.2.
 */
function fileName(key: string): string {
  const bytes = Buffer.from(key, 'utf8');
  const words = new Int32Array((bytes.length + 3) >> 2);
  new Uint8Array(words.buffer).set(bytes);
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < words.length; i++) {
    a = Math.imul(a ^ words[i], 0x01000193);
    b = Math.imul(b ^ words[i], 0x01000193);
  }
  const hex = (h: number) => (h >>> 0).toString(16).padStart(8, '0');
  return `${hex(a)}${hex(b)}-${bytes.length}.json`;
}

export class SeccompDiskCache implements SeccompMemo {
  private readonly dir: string;
  private salt: string | undefined;
  private readonly pending = new Map<string, CompiledSeccomp>();

  constructor(stateRoot: string) {
    this.dir = join(stateRoot, '@cache', 'seccomp');
  }

  /** what besides the profile decides the program: libseccomp's version, the architecture, this build of koci */
  private key(profile: string): string {
    if (this.salt === undefined) {
      const v = S.version();
      // koci's version, and this file's time: a rebuild (which rewrites every module) is a new build too
      // (npm gives every installed file one fixed time, so the version tells releases apart)
      const { version } = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
      // the kernel too: which flags may go to seccomp(2) was checked against it when the program was built
      this.salt = `libseccomp ${v.major}.${v.minor}.${v.micro} ${process.arch} kernel ${release()} koci ${version} ${statSync(__filename).mtimeMs}\n`;
    }
    return this.salt + profile;
  }

  get(profile: string): CompiledSeccomp | undefined {
    try {
      const key = this.key(profile);
      const e = JSON.parse(readFileSync(join(this.dir, fileName(key)), 'utf8')) as Entry;
      if (e.key !== key || typeof e.bpf !== 'string' || typeof e.loadFlags !== 'number' || !Array.isArray(e.skipped)) return undefined;
      const bpf = Buffer.from(e.bpf, 'base64');
      if (bpf.length === 0 || bpf.length % 8 !== 0) return undefined; // struct sock_filter is 8 bytes
      return { bpf, loadFlags: e.loadFlags, notify: e.notify === true, skipped: e.skipped };
    } catch {
      return undefined;
    }
  }

  set(profile: string, compiled: CompiledSeccomp): void {
    this.pending.set(profile, compiled);
  }

  /** write what this process compiled (called once a container was created with it) */
  keep(): void {
    for (const [profile, c] of this.pending) {
      try {
        const key = this.key(profile);
        mkdirSync(this.dir, { recursive: true, mode: 0o700 });
        const file = join(this.dir, fileName(key));
        const tmp = `${file}.${process.pid}.tmp`;
        const entry: Entry = { key, bpf: c.bpf.toString('base64'), loadFlags: c.loadFlags, notify: c.notify, skipped: c.skipped };
        writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 });
        renameSync(tmp, file);
      } catch {
        /* a read-only or full state root: the next create compiles again */
      }
    }
    this.pending.clear();
  }
}
