/**
 * bpf(2): the few commands koci needs to guard devices on cgroup v2 (load a
 * BPF_PROG_TYPE_CGROUP_DEVICE program, attach it to a cgroup directory, list
 * and detach the ones there). glibc has no wrapper, so each command is a raw
 * syscall with its variant of `union bpf_attr` laid out in a Buffer; pointers
 * inside the union are the Buffers' addresses, which stay put while the
 * Buffers are referenced (they are, until the call returns).
 */
import * as koffi from 'koffi';
import * as C from './constants';
import { SyscallError } from './errors';
import { rawSyscall } from './libc';

// commands (enum bpf_cmd)
export const BPF_PROG_LOAD = 5;
export const BPF_PROG_ATTACH = 8;
export const BPF_PROG_DETACH = 9;
export const BPF_PROG_GET_FD_BY_ID = 13;
export const BPF_OBJ_GET_INFO_BY_FD = 15;
export const BPF_PROG_QUERY = 16;

const COMMAND: Record<number, string> = {
  [BPF_PROG_LOAD]: 'BPF_PROG_LOAD',
  [BPF_PROG_ATTACH]: 'BPF_PROG_ATTACH',
  [BPF_PROG_DETACH]: 'BPF_PROG_DETACH',
  [BPF_PROG_GET_FD_BY_ID]: 'BPF_PROG_GET_FD_BY_ID',
  [BPF_OBJ_GET_INFO_BY_FD]: 'BPF_OBJ_GET_INFO_BY_FD',
  [BPF_PROG_QUERY]: 'BPF_PROG_QUERY',
};

export const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
/** enum bpf_attach_type */
export const BPF_CGROUP_DEVICE = 6;
/** several programs per cgroup, all of which must allow (as runc and systemd attach) */
export const BPF_F_ALLOW_MULTI = 2;

// struct bpf_cgroup_dev_ctx: access_type = type | access << 16
export const BPF_DEVCG_DEV_BLOCK = 1;
export const BPF_DEVCG_DEV_CHAR = 2;
export const BPF_DEVCG_ACC_MKNOD = 1;
export const BPF_DEVCG_ACC_READ = 2;
export const BPF_DEVCG_ACC_WRITE = 4;

// instruction encoding (struct bpf_insn: u8 code, u8 dst:4|src:4, s16 off, s32 imm)
export const BPF_LDX_MEM_W = 0x61;
export const BPF_ALU_AND_K = 0x54;
export const BPF_ALU_RSH_K = 0x74;
export const BPF_ALU_MOV_K = 0xb4;
export const BPF_JMP_JA = 0x05;
export const BPF_JMP_JNE_K = 0x55;
export const BPF_JMP_JSET_K = 0x45;
export const BPF_JMP_EXIT = 0x95;
export const BPF_INSN_SIZE = 8;

const LOG_SIZE = 256 * 1024;

/** a failed bpf(2) command; a verifier rejection carries the end of the verifier's log */
export class BpfError extends SyscallError {
  constructor(
    readonly command: string,
    errno: number,
    path?: string,
    readonly verifierLog?: string,
  ) {
    super('bpf', errno, path);
    const tail = verifierLog ? verifierLog.trim().split('\n').slice(-6).join('\n') : '';
    this.message = `${command}: ${this.message}${tail ? `; verifier log ends:\n${tail}` : ''}`;
  }
}

function bpf(cmd: number, attr: Buffer, path?: string): number {
  const { ret, errno } = rawSyscall(C.arch.SYS_bpf, 'int', cmd, 'uint8_t *', attr, 'uint', attr.length);
  if (ret < 0) throw new BpfError(COMMAND[cmd] ?? `bpf command ${cmd}`, errno, path);
  return ret;
}

function load(insns: Buffer, license: Buffer, name: string, log?: Buffer): { ret: number; errno: number } {
  const attr = Buffer.alloc(72);
  attr.writeUInt32LE(BPF_PROG_TYPE_CGROUP_DEVICE, 0);
  attr.writeUInt32LE(insns.length / BPF_INSN_SIZE, 4);
  attr.writeBigUInt64LE(koffi.address(insns), 8);
  attr.writeBigUInt64LE(koffi.address(license), 16);
  if (log) {
    attr.writeUInt32LE(1, 24); // log_level
    attr.writeUInt32LE(log.length, 28);
    attr.writeBigUInt64LE(koffi.address(log), 32);
  }
  attr.write(name.slice(0, 15), 48, 'latin1'); // prog_name, NUL-terminated by the zeroed tail
  return rawSyscall(C.arch.SYS_bpf, 'int', BPF_PROG_LOAD, 'uint8_t *', attr, 'uint', attr.length);
}

/**
 * Load a cgroup device program; returns its fd (close-on-exec, as every bpf
 * fd). Loaded without a log first (the log costs verifier time); a rejected
 * program is loaded again with one, so the error says why.
 */
export function progLoadCgroupDevice(insns: Buffer, name: string, license = 'Apache'): number {
  if (insns.length === 0 || insns.length % BPF_INSN_SIZE) throw new RangeError(`a BPF program is a whole number of 8-byte instructions, not ${insns.length} bytes`);
  const lic = Buffer.from(`${license}\0`, 'latin1');
  const first = load(insns, lic, name);
  if (first.ret >= 0) return first.ret;
  const buf = Buffer.alloc(LOG_SIZE);
  const again = load(insns, lic, name, buf);
  if (again.ret >= 0) return again.ret; // accepted the second time: keep it
  const end = buf.indexOf(0);
  throw new BpfError('BPF_PROG_LOAD', again.errno, undefined, buf.toString('utf8', 0, end < 0 ? buf.length : end));
}

/** attach a program to the cgroup directory open at `cgroupFd`, beside any already there */
export function progAttach(cgroupFd: number, progFd: number, attachType: number, flags: number, path?: string): void {
  const attr = Buffer.alloc(20);
  attr.writeUInt32LE(cgroupFd, 0);
  attr.writeUInt32LE(progFd, 4);
  attr.writeUInt32LE(attachType, 8);
  attr.writeUInt32LE(flags, 12);
  bpf(BPF_PROG_ATTACH, attr, path);
}

export function progDetach(cgroupFd: number, progFd: number, attachType: number, path?: string): void {
  const attr = Buffer.alloc(20);
  attr.writeUInt32LE(cgroupFd, 0);
  attr.writeUInt32LE(progFd, 4);
  attr.writeUInt32LE(attachType, 8);
  bpf(BPF_PROG_DETACH, attr, path);
}

/** IDs of the programs attached to this cgroup itself (not inherited from its ancestors) */
export function progQuery(cgroupFd: number, attachType: number, path?: string): number[] {
  for (let room = 16; ; room *= 4) {
    const ids = Buffer.alloc(room * 4);
    const attr = Buffer.alloc(32);
    attr.writeUInt32LE(cgroupFd, 0);
    attr.writeUInt32LE(attachType, 4);
    attr.writeBigUInt64LE(koffi.address(ids), 16);
    attr.writeUInt32LE(room, 24);
    try {
      bpf(BPF_PROG_QUERY, attr, path);
    } catch (e) {
      if ((e as SyscallError).code === 'ENOSPC' && room < 65536) continue; // more programs than room: ask again
      throw e;
    }
    const n = attr.readUInt32LE(24);
    return Array.from({ length: n }, (_, i) => ids.readUInt32LE(i * 4));
  }
}

/** an fd (close-on-exec) for a loaded program, by ID */
export function progFdById(id: number): number {
  const attr = Buffer.alloc(12);
  attr.writeUInt32LE(id, 0);
  return bpf(BPF_PROG_GET_FD_BY_ID, attr, `program ${id}`);
}

export interface ProgInfo {
  type: number;
  id: number;
  name: string;
}

/** what the kernel knows of a program: type, ID, name (struct bpf_prog_info up to name) */
export function progInfo(progFd: number): ProgInfo {
  const info = Buffer.alloc(80);
  const attr = Buffer.alloc(16);
  attr.writeUInt32LE(progFd, 0);
  attr.writeUInt32LE(info.length, 4);
  attr.writeBigUInt64LE(koffi.address(info), 8);
  bpf(BPF_OBJ_GET_INFO_BY_FD, attr);
  const name = info.subarray(64, 80);
  const end = name.indexOf(0);
  return { type: info.readUInt32LE(0), id: info.readUInt32LE(4), name: name.toString('latin1', 0, end < 0 ? 16 : end) };
}
