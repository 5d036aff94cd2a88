/**
 * Device rules -> eBPF (lib/cgroups/device-program.ts), checked without a
 * cgroup: the program runs through a small interpreter of the opcodes the
 * compiler emits, against a direct reading of the rules (per access bit, the
 * last matching rule wins, default deny), for chosen and random rule lists.
 * As root, the same programs are also loaded into the kernel, so the
 * verifier accepts every shape the compiler produces (real device access is
 * in device-bpf.test.ts).
 */
import { closeSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as B from '../bindings/bpf';
import { compileDeviceProgram } from '../lib/cgroups/device-program';
import { deviceRules, deviceTarget } from '../lib/cgroups/devices';
import { CgroupError } from '../lib/errors';
import type { LinuxDeviceCgroup } from '../lib/spec/types';

const R = B.BPF_DEVCG_ACC_READ;
const W = B.BPF_DEVCG_ACC_WRITE;
const M = B.BPF_DEVCG_ACC_MKNOD;
const CHAR = B.BPF_DEVCG_DEV_CHAR;
const BLOCK = B.BPF_DEVCG_DEV_BLOCK;

interface Request {
  type: number;
  major: number;
  minor: number;
  access: number;
}

/** run a program over struct bpf_cgroup_dev_ctx; throws on an opcode the compiler should not emit */
function run(prog: Buffer, q: Request): number {
  const ctx = [(q.type | (q.access << 16)) >>> 0, q.major >>> 0, q.minor >>> 0];
  const reg = new Array<number>(11).fill(0);
  for (let pc = 0, steps = 0; steps < 100_000; steps++) {
    if (pc < 0 || pc * 8 >= prog.length) throw new Error(`pc ${pc} out of the program`);
    const o = pc * 8;
    const code = prog[o];
    const dst = prog[o + 1] & 0xf;
    const src = prog[o + 1] >> 4;
    const off = prog.readInt16LE(o + 2);
    const imm = prog.readInt32LE(o + 4);
    pc++;
    switch (code) {
      case B.BPF_LDX_MEM_W:
        if (src !== 1 || off % 4 || off < 0 || off > 8) throw new Error(`bad ctx load r${src}+${off}`);
        reg[dst] = ctx[off / 4];
        break;
      case B.BPF_ALU_AND_K:
        reg[dst] = (reg[dst] & imm) >>> 0;
        break;
      case B.BPF_ALU_RSH_K:
        reg[dst] = reg[dst] >>> imm;
        break;
      case B.BPF_ALU_MOV_K:
        reg[dst] = imm >>> 0;
        break;
      case B.BPF_JMP_JA:
        pc += off;
        break;
      case B.BPF_JMP_JNE_K:
        if (reg[dst] !== imm) pc += off; // imm is never negative: see the compiler's bound
        break;
      case B.BPF_JMP_JSET_K:
        if (reg[dst] & imm) pc += off;
        break;
      case B.BPF_JMP_EXIT:
        return reg[0];
      default:
        throw new Error(`unexpected opcode 0x${code.toString(16)} at ${pc - 1}`);
    }
  }
  throw new Error('no exit');
}

/** the rules read directly: each requested bit decided by the last rule naming it that matches */
function model(rules: LinuxDeviceCgroup[], q: Request): number {
  const bits: Array<[string, number]> = [['m', M], ['r', R], ['w', W]];
  for (const [letter, bit] of bits) {
    if (!(q.access & bit)) continue;
    let allowed = false;
    for (const r of rules) {
      const type = r.type ?? 'a';
      if (type !== 'a' && (type === 'c' ? CHAR : BLOCK) !== q.type) continue;
      if (r.major !== undefined && r.major !== -1 && r.major !== q.major) continue;
      if (r.minor !== undefined && r.minor !== -1 && r.minor !== q.minor) continue;
      if (!(r.access || 'rwm').includes(letter)) continue;
      allowed = r.allow;
    }
    if (!allowed) return 0;
  }
  return 1;
}

const canLoad = process.getuid?.() === 0;
/** load into the kernel (root only): throws with the verifier's log when refused */
function verify(prog: Buffer): void {
  if (canLoad) closeSync(B.progLoadCgroupDevice(prog, 'koci_test'));
}

const q = (type: number, major: number, minor: number, access: number): Request => ({ type, major, minor, access });

t.test('no rules: everything denied', async (t) => {
  const p = compileDeviceProgram([]);
  for (const access of [R, W, M, R | W]) t.equal(run(p, q(CHAR, 1, 3, access)), 0);
  verify(p);
});

t.test("koci's default rules: the usual devices, mknod of any, nothing else", async (t) => {
  const rules = deviceRules({ ociVersion: '1.0.0', linux: { resources: { devices: [{ allow: false, access: 'rwm' }] } } });
  const p = compileDeviceProgram(rules);
  t.equal(run(p, q(CHAR, 1, 3, R | W)), 1, '/dev/null rw');
  t.equal(run(p, q(CHAR, 1, 9, R)), 1, '/dev/urandom r');
  t.equal(run(p, q(CHAR, 136, 7, R | W)), 1, '/dev/pts/7');
  t.equal(run(p, q(CHAR, 10, 229, R)), 0, '/dev/fuse read denied');
  t.equal(run(p, q(CHAR, 10, 229, M)), 1, 'mknod of any char device');
  t.equal(run(p, q(BLOCK, 8, 0, M)), 1, 'mknod of any block device');
  t.equal(run(p, q(BLOCK, 8, 0, R)), 0, 'block device read denied');
  t.ok(p.length / 8 < 150, `${p.length / 8} instructions`);
  verify(p);
});

t.test('the last matching rule wins', async (t) => {
  const allowThenDeny = compileDeviceProgram([{ allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, { allow: false, type: 'c', major: 1, minor: 3, access: 'rwm' }]);
  t.equal(run(allowThenDeny, q(CHAR, 1, 3, R)), 0, 'deny after allow denies');
  const denyThenAllow = compileDeviceProgram([{ allow: false, type: 'c', major: 1, minor: 3, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }]);
  t.equal(run(denyThenAllow, q(CHAR, 1, 3, R)), 1, 'allow after deny allows');
  // a hole in a wildcard, and a wildcard over an earlier hole
  const hole = compileDeviceProgram([{ allow: false }, { allow: true, type: 'c', major: 1 }, { allow: false, type: 'c', major: 1, minor: 5 }]);
  t.equal(run(hole, q(CHAR, 1, 3, R)), 1, 'c 1:* allows 1:3');
  t.equal(run(hole, q(CHAR, 1, 5, R)), 0, 'the later c 1:5 deny wins over c 1:*');
  t.equal(run(hole, q(CHAR, 2, 5, R)), 0, 'other majors stay denied');
  const over = compileDeviceProgram([{ allow: false, type: 'c', major: 1, minor: 5 }, { allow: true, type: 'c', major: 1 }]);
  t.equal(run(over, q(CHAR, 1, 5, R)), 1, 'a later wildcard allow wins over an earlier deny');
  verify(hole);
  verify(over);
});

t.test('type a matches char and block; -1 and a missing number are wildcards', async (t) => {
  const p = compileDeviceProgram([{ allow: true, type: 'a', major: 8, minor: -1, access: 'r' }]);
  t.equal(run(p, q(CHAR, 8, 1, R)), 1);
  t.equal(run(p, q(BLOCK, 8, 1, R)), 1);
  t.equal(run(p, q(BLOCK, 9, 1, R)), 0);
  t.equal(run(p, q(BLOCK, 8, 1, W)), 0, 'only the access named');
  const all = compileDeviceProgram([{ allow: true }]);
  t.equal(run(all, q(BLOCK, 259, 4, R | W | M)), 1, 'allow with nothing else given allows all');
  verify(p);
  verify(all);
});

t.test('each access bit is decided on its own', async (t) => {
  // a narrower deny after a wide allow: O_RDWR must not slip through
  const p = compileDeviceProgram([{ allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, { allow: false, type: 'c', major: 1, minor: 3, access: 'w' }]);
  t.equal(run(p, q(CHAR, 1, 3, R)), 1, 'read still allowed');
  t.equal(run(p, q(CHAR, 1, 3, W)), 0, 'write denied');
  t.equal(run(p, q(CHAR, 1, 3, R | W)), 0, 'read+write denied');
  // two partial allows together cover a read+write open (as v1 merges them)
  const split = compileDeviceProgram([{ allow: true, type: 'c', major: 1, minor: 3, access: 'r' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'w' }]);
  t.equal(run(split, q(CHAR, 1, 3, R | W)), 1);
  t.equal(run(split, q(CHAR, 1, 3, M)), 0);
  const empty = compileDeviceProgram([{ allow: true, type: 'c', major: 1, minor: 3, access: '' }]);
  t.equal(run(empty, q(CHAR, 1, 3, R | W | M)), 1, 'empty access means rwm');
  verify(p);
  verify(split);
});

t.test('random rule lists: the program agrees with the rules', async (t) => {
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pick = <T>(xs: T[]) => xs[rnd(xs.length)];
  const accesses = ['r', 'w', 'm', 'rw', 'rm', 'wm', 'rwm', ''];
  let checked = 0;
  let loaded = 0;
  for (let i = 0; i < 400; i++) {
    const rules: LinuxDeviceCgroup[] = Array.from({ length: rnd(12) }, () => ({
      allow: rnd(2) === 1,
      type: pick(['a', 'b', 'c', undefined]),
      major: pick([undefined, -1, 1, 2, 8]),
      minor: pick([undefined, -1, 0, 3, 5]),
      access: pick(accesses),
    }));
    const p = compileDeviceProgram(rules);
    for (const type of [CHAR, BLOCK]) {
      for (const major of [1, 2, 8, 9]) {
        for (const minor of [0, 3, 5, 7]) {
          for (let access = 0; access < 8; access++) {
            const want = model(rules, q(type, major, minor, access));
            const got = run(p, q(type, major, minor, access));
            if (got !== want) t.fail(`rules ${JSON.stringify(rules)}: ${type}:${major}:${minor} access ${access}: program ${got}, rules ${want}`);
            checked++;
          }
        }
      }
    }
    if (canLoad && i % 4 === 0) {
      verify(p);
      loaded++;
    }
  }
  t.pass(`${checked} requests agree over 400 rule lists${canLoad ? `; ${loaded} programs accepted by the kernel verifier` : ''}`);
});

t.test('a long rule list still loads', { skip: canLoad ? false : 'loading needs root' }, async (t) => {
  const rules: LinuxDeviceCgroup[] = [{ allow: false }];
  for (let i = 0; i < 500; i++) rules.push({ allow: i % 3 !== 0, type: i % 2 ? 'c' : 'b', major: i % 40, minor: i, access: i % 5 ? 'rwm' : 'r' });
  const p = compileDeviceProgram(rules);
  t.doesNotThrow(() => verify(p), `${p.length / 8} instructions`);
});

t.test('malformed rules are refused with the field', async (t) => {
  for (const bad of [{ allow: true, type: 'x' }, { allow: true, type: 'c', access: 'rx' }, { allow: true, type: 'c', major: 1.5 }, { allow: true, type: 'c', minor: -2 }, { allow: true, type: 'c', major: 2 ** 32 }]) {
    t.throws(() => compileDeviceProgram([bad]), CgroupError, JSON.stringify(bad));
  }
  const e = (() => {
    try {
      compileDeviceProgram([{ allow: true, type: 'x' }]);
    } catch (err) {
      return err as CgroupError;
    }
  })();
  t.equal(e?.field, 'linux.resources.devices');
});

t.test('a program the verifier refuses is a SyscallError with the verifier log', { skip: canLoad ? false : 'loading needs root' }, async (t) => {
  // r0 = 5; exit: a device program must return 0 or 1
  const bad = Buffer.from([0xb4, 0, 0, 0, 5, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
  const err = (() => {
    try {
      B.progLoadCgroupDevice(bad, 'koci_test');
    } catch (e) {
      return e as B.BpfError;
    }
  })();
  t.ok(err, 'refused');
  t.equal(err?.name, 'SyscallError');
  t.equal(err?.syscall, 'bpf');
  t.equal(err?.command, 'BPF_PROG_LOAD');
  t.match(err?.code, /^E(INVAL|ACCES)$/);
  t.match(err?.message, /R0 .*should have been in/, 'the message carries the verifier log');
  t.throws(() => B.progLoadCgroupDevice(Buffer.alloc(12), 'x'), RangeError, 'not whole instructions');
});

t.test('where the rules go: the v1 devices hierarchy when there is one, else the cgroup2 leaf', async (t) => {
  const fake = mkdtempSync(join(tmpdir(), 'koci-cgfake-'));
  t.teardown(() => rmSync(fake, { recursive: true, force: true }));
  const v1 = join(fake, 'devices', 'koci-x');
  const v2 = join(fake, 'unified', 'koci-x');
  mkdirSync(v1, { recursive: true });
  mkdirSync(v2, { recursive: true });
  writeFileSync(join(v1, 'devices.allow'), '');
  const mounts = [
    { mountpoint: join(fake, 'devices'), key: 'devices' },
    { mountpoint: join(fake, 'unified'), key: '' },
  ];
  t.same(deviceTarget([v1, v2], mounts), { version: 1, dir: v1 }, 'hybrid host: v1');
  t.same(deviceTarget([v2], mounts.slice(1)), { version: 2, dir: v2 }, 'pure v2: the program');
  t.equal(deviceTarget([join(fake, 'elsewhere')], mounts.slice(1)), undefined, 'no cgroup that controls devices');
});
