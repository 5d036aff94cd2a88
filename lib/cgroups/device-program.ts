/**
 * Device rules as an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE), which is how
 * cgroup v2 controls device access; runc and crun build the same kind of
 * program. The kernel runs it on every open or mknod of a device node with
 * the device's type, major, minor and the access asked for.
 *
 * Semantics: the last rule that matches wins (rules are tested in reverse
 * order), nothing matching means deny, type "a" and a missing (or -1) major
 * or minor are wildcards, an empty access means "rwm". Each access bit asked
 * for is decided on its own and the request passes only when every bit is
 * allowed, so `deny c 1:3 w` also refuses an O_RDWR open that an earlier
 * `allow c 1:3 rwm` would let through if the rule had to cover the whole
 * request to match (the whole-request test runc uses is only right after its
 * v1 emulator has reduced the rules to one polarity).
 */
import {
  BPF_ALU_AND_K,
  BPF_ALU_MOV_K,
  BPF_ALU_RSH_K,
  BPF_CGROUP_DEVICE,
  BPF_DEVCG_ACC_MKNOD,
  BPF_DEVCG_ACC_READ,
  BPF_DEVCG_ACC_WRITE,
  BPF_DEVCG_DEV_BLOCK,
  BPF_DEVCG_DEV_CHAR,
  BPF_F_ALLOW_MULTI,
  BPF_INSN_SIZE,
  BPF_JMP_EXIT,
  BPF_JMP_JA,
  BPF_JMP_JNE_K,
  BPF_JMP_JSET_K,
  BPF_LDX_MEM_W,
  progAttach,
  progDetach,
  progFdById,
  progInfo,
  progLoadCgroupDevice,
  progQuery,
} from '../../bindings/bpf';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { CgroupError } from '../errors';
import type { LinuxDeviceCgroup } from '../spec/types';

/** the name koci's programs carry, so an update replaces koci's own and no one else's */
export const PROGRAM_NAME = 'koci_devices';

const FIELD = 'linux.resources.devices';
const TYPES: Record<string, number> = { b: BPF_DEVCG_DEV_BLOCK, c: BPF_DEVCG_DEV_CHAR };
const BITS: Array<[string, number]> = [
  ['m', BPF_DEVCG_ACC_MKNOD],
  ['r', BPF_DEVCG_ACC_READ],
  ['w', BPF_DEVCG_ACC_WRITE],
];

interface Rule {
  allow: boolean;
  /** BPF_DEVCG_DEV_*, or 0 for any type */
  type: number;
  /** -1: any */
  major: number;
  minor: number;
  access: string;
}

function number(v: number | undefined, what: string, r: LinuxDeviceCgroup): number {
  if (v === undefined || v === null || v === -1) return -1;
  // device numbers are 12 + 20 bits; the bound keeps the 32-bit immediate's sign extension harmless
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new CgroupError(FIELD, `${what} ${JSON.stringify(v)} in ${JSON.stringify(r)} is not a device number (an integer from 0, or -1 for any)`);
  return v;
}

function normalize(r: LinuxDeviceCgroup): Rule {
  const t = r.type ?? 'a';
  if (t !== 'a' && !(t in TYPES)) throw new CgroupError(FIELD, `type ${JSON.stringify(t)} in ${JSON.stringify(r)} must be "a", "b" or "c"`);
  const access = r.access || 'rwm';
  if (!/^[rwm]+$/.test(access)) throw new CgroupError(FIELD, `access ${JSON.stringify(access)} in ${JSON.stringify(r)} may only hold r, w and m`);
  return { allow: !!r.allow, type: t === 'a' ? 0 : TYPES[t], major: number(r.major, 'major', r), minor: number(r.minor, 'minor', r), access };
}

interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
  /** a jump's destination label, resolved into `off` at the end */
  to?: string;
}

/** a few-opcode assembler with forward labels */
class Asm {
  readonly insns: Insn[] = [];
  private readonly labels = new Map<string, number>();
  private readonly used = new Set<string>();
  private n = 0;

  emit(code: number, dst: number, imm = 0, off = 0, src = 0): void {
    this.insns.push({ code, dst, src, off, imm });
  }
  jump(code: number, dst: number, imm: number, to: string): void {
    this.insns.push({ code, dst, src: 0, off: 0, imm, to });
    this.used.add(to);
  }
  fresh(): string {
    return `L${this.n++}`;
  }
  mark(label: string): void {
    this.labels.set(label, this.insns.length);
  }
  isUsed(label: string): boolean {
    return this.used.has(label);
  }
  assemble(): Buffer {
    const out = Buffer.alloc(this.insns.length * BPF_INSN_SIZE);
    this.insns.forEach((x, i) => {
      let off = x.off;
      if (x.to !== undefined) {
        const at = this.labels.get(x.to);
        if (at === undefined) throw new Error(`device program: label ${x.to} never placed`);
        off = at - (i + 1);
      }
      const o = i * BPF_INSN_SIZE;
      out.writeUInt8(x.code, o);
      out.writeUInt8((x.src << 4) | x.dst, o + 1);
      out.writeInt16LE(off, o + 2);
      out.writeInt32LE(x.imm, o + 4);
    });
    return out;
  }
}

/** eBPF for the ordered rule list; a CgroupError for a malformed rule */
export function compileDeviceProgram(rules: readonly LinuxDeviceCgroup[]): Buffer {
  const list = rules.map(normalize);
  const a = new Asm();
  // r1 = struct bpf_cgroup_dev_ctx *: r2 type, r3 access, r4 major, r5 minor
  a.emit(BPF_LDX_MEM_W, 2, 0, 0, 1);
  a.emit(BPF_ALU_AND_K, 2, 0xffff);
  a.emit(BPF_LDX_MEM_W, 3, 0, 0, 1);
  a.emit(BPF_ALU_RSH_K, 3, 16);
  a.emit(BPF_LDX_MEM_W, 4, 0, 4, 1);
  a.emit(BPF_LDX_MEM_W, 5, 0, 8, 1);
  for (const [letter, bit] of BITS) {
    const done = a.fresh();
    // a request without this bit skips its chain
    a.emit(BPF_JMP_JSET_K, 3, bit, 1);
    a.jump(BPF_JMP_JA, 0, 0, done);
    let fallsThrough = true;
    for (let i = list.length - 1; i >= 0; i--) {
      const r = list[i];
      if (!r.access.includes(letter)) continue;
      const next = a.fresh();
      if (r.type) a.jump(BPF_JMP_JNE_K, 2, r.type, next);
      if (r.major >= 0) a.jump(BPF_JMP_JNE_K, 4, r.major, next);
      if (r.minor >= 0) a.jump(BPF_JMP_JNE_K, 5, r.minor, next);
      a.jump(BPF_JMP_JA, 0, 0, r.allow ? done : 'deny');
      if (!a.isUsed(next)) {
        // a rule matching every device ends the chain: what precedes it is
        // unreachable, and the verifier refuses unreachable instructions
        fallsThrough = false;
        break;
      }
      a.mark(next);
    }
    if (fallsThrough) a.jump(BPF_JMP_JA, 0, 0, 'deny');
    a.mark(done);
  }
  a.emit(BPF_ALU_MOV_K, 0, 1);
  a.emit(BPF_JMP_EXIT, 0);
  if (a.isUsed('deny')) {
    a.mark('deny');
    a.emit(BPF_ALU_MOV_K, 0, 0);
    a.emit(BPF_JMP_EXIT, 0);
  }
  return a.assemble();
}

/**
 * Put the program on a cgroup v2 directory. A program koci attached before
 * (update) is detached only after the new one is on, so the cgroup is never
 * without a filter (runc does the same); programs others attached stay. No
 * fd outlives the call: the attachment holds the program.
 */
export function attachDeviceProgram(dir: string, insns: Buffer): void {
  const dirFd = libc.open(dir, C.O_RDONLY | C.arch.O_DIRECTORY | C.O_CLOEXEC);
  let progFd = -1;
  try {
    const old = progQuery(dirFd, BPF_CGROUP_DEVICE, dir);
    progFd = progLoadCgroupDevice(insns, PROGRAM_NAME);
    progAttach(dirFd, progFd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, dir);
    for (const id of old) {
      const fd = progFdById(id);
      try {
        if (progInfo(fd).name === PROGRAM_NAME) progDetach(dirFd, fd, BPF_CGROUP_DEVICE, dir);
      } finally {
        libc.close(fd);
      }
    }
  } finally {
    if (progFd >= 0) libc.close(progFd);
    libc.close(dirFd);
  }
}

/** IDs and names of the device programs on a cgroup v2 directory (for tests and diagnostics) */
export function attachedDevicePrograms(dir: string): Array<{ id: number; name: string }> {
  const dirFd = libc.open(dir, C.O_RDONLY | C.arch.O_DIRECTORY | C.O_CLOEXEC);
  try {
    return progQuery(dirFd, BPF_CGROUP_DEVICE, dir).map((id) => {
      const fd = progFdById(id);
      try {
        return { id, name: progInfo(fd).name };
      } finally {
        libc.close(fd);
      }
    });
  } finally {
    libc.close(dirFd);
  }
}
