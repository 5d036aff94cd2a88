/**
 * The last hop into a container's process (CVE-2019-5736 class).
 *
 * koci's container init and exec'd processes are forks of Node: until their
 * final execve, /proc/self/exe is the host's node binary. A container program
 * like `#!/proc/self/exe` would have the kernel execute that very file inside
 * the container, where the container can open it and, once no node runs,
 * write it. Being non-dumpable does not help: execve makes the process
 * dumpable again. So the process does not execve the user's program itself.
 * It executes this trampoline from a sealed memfd, and the trampoline execs
 * the program: during that last execve /proc/self/exe is the trampoline,
 * which nobody can write (F_SEAL_WRITE) and which exists only for this exec.
 *
 * The trampoline is a minimal static ELF, built here per architecture:
 *   if (argv[0][0] != '\x01') fail;     // run only by koci, never as a script's interpreter
 *   execve(argv[1], &argv[2], envp);    // the program, with its own argv
 *   fail: write(2, "koci: exec failed\n"); exit_group(127);
 * The init checks the program before (lookPath), so "exec failed" is left
 * for what only execve can tell (a bad ELF, a missing script interpreter).
 */
import { writeSync } from 'node:fs';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { SyscallError } from '../errors';

const MESSAGE = Buffer.from('koci: exec failed\n');
/** argv[0] of the trampoline: its first byte says koci ran it */
export const TRAMPOLINE_ARGV0 = '\x01koci-exec';
const BASE = 0x400000n;
const HEADERS = 64 + 56; // ELF header + one program header

/** x86_64: the code, with the message right after it */
function codeX64(): Buffer {
  const head = Buffer.from([
    0x48, 0x8b, 0x44, 0x24, 0x08, // mov rax, [rsp+8]        argv[0]
    0x80, 0x38, 0x01, //             cmp byte [rax], 1
    0x75, 0x1a, //                   jne fail (+26)
    0x48, 0x8b, 0x7c, 0x24, 0x10, // mov rdi, [rsp+16]       argv[1]: the program
    0x48, 0x8d, 0x74, 0x24, 0x18, // lea rsi, [rsp+24]       &argv[2]: its argv
    0x48, 0x8b, 0x04, 0x24, //       mov rax, [rsp]          argc
    0x48, 0x8d, 0x54, 0xc4, 0x10, // lea rdx, [rsp+rax*8+16] envp
    0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59             execve
    0x0f, 0x05, //                   syscall
    // fail:
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi, 2
    0x48, 0x8d, 0x35, 0, 0, 0, 0, // lea rsi, [rip+msg]      (patched below)
    0xba, MESSAGE.length, 0x00, 0x00, 0x00, // mov edx, len
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1              write
    0x0f, 0x05, //                   syscall
    0xbf, 0x7f, 0x00, 0x00, 0x00, // mov edi, 127
    0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231            exit_group
    0x0f, 0x05, //                   syscall
  ]);
  // rip-relative: from the end of the lea (bytes 41..47) to the message after the code
  head.writeInt32LE(head.length - 48, 44);
  return Buffer.concat([head, MESSAGE]);
}

/** aarch64: 32-bit little-endian instructions, then the message */
function codeArm64(): Buffer {
  const words = [
    0xf94007e3, // ldr  x3, [sp, #8]      argv[0]
    0x39400064, // ldrb w4, [x3]
    0x7100049f, // cmp  w4, #1
    0x54000101, // b.ne fail (+8 instructions)
    0xf9400be0, // ldr  x0, [sp, #16]     argv[1]: the program
    0x910063e1, // add  x1, sp, #24       &argv[2]: its argv
    0xf94003e2, // ldr  x2, [sp]          argc
    0x8b226fe2, // add  x2, sp, x2, uxtx #3
    0x91004042, // add  x2, x2, #16       envp
    0xd2801ba8, // mov  x8, #221          execve
    0xd4000001, // svc  #0
    // fail:
    0xd2800040, // mov  x0, #2
    0, //          adr  x1, msg           (patched below)
    0xd2800002 | (MESSAGE.length << 5), // mov x2, #len
    0xd2800808, // mov  x8, #64           write
    0xd4000001, // svc  #0
    0xd2800fe0, // mov  x0, #127
    0xd2800bc8, // mov  x8, #94           exit_group
    0xd4000001, // svc  #0
  ];
  const adrAt = 12;
  const offset = (words.length - adrAt) * 4; // from the adr to the message after the code
  words[adrAt] = 0x10000001 | ((offset & 3) << 29) | ((offset >> 2) << 5);
  const code = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => code.writeUInt32LE(w >>> 0, i * 4));
  return Buffer.concat([code, MESSAGE]);
}

const MACHINES: Record<string, { machine: number; align: bigint; code: () => Buffer }> = {
  x64: { machine: 62 /* EM_X86_64 */, align: 0x1000n, code: codeX64 },
  arm64: { machine: 183 /* EM_AARCH64 */, align: 0x10000n, code: codeArm64 },
};

/** the trampoline as an ELF executable for the architecture (process.arch's names) */
export function trampolineImage(arch: string = process.arch): Buffer {
  const m = MACHINES[arch];
  if (!m) throw new Error(`koci: no exec trampoline for architecture ${arch}`);
  const code = m.code();
  const size = BigInt(HEADERS + code.length);
  const h = Buffer.alloc(HEADERS);
  h.set([0x7f, 0x45, 0x4c, 0x46, 2 /* 64-bit */, 1 /* little-endian */, 1 /* version */], 0);
  h.writeUInt16LE(2, 16); // ET_EXEC
  h.writeUInt16LE(m.machine, 18);
  h.writeUInt32LE(1, 20); // EV_CURRENT
  h.writeBigUInt64LE(BASE + BigInt(HEADERS), 24); // entry: the code after the headers
  h.writeBigUInt64LE(64n, 32); // program headers right after this one
  h.writeUInt16LE(64, 52); // e_ehsize
  h.writeUInt16LE(56, 54); // e_phentsize
  h.writeUInt16LE(1, 56); // e_phnum
  // PT_LOAD of the whole file, read + execute
  h.writeUInt32LE(1, 64);
  h.writeUInt32LE(5, 68);
  h.writeBigUInt64LE(0n, 72); // p_offset
  h.writeBigUInt64LE(BASE, 80); // p_vaddr
  h.writeBigUInt64LE(BASE, 88); // p_paddr
  h.writeBigUInt64LE(size, 96); // p_filesz
  h.writeBigUInt64LE(size, 104); // p_memsz
  h.writeBigUInt64LE(m.align, 112);
  return Buffer.concat([h, code]);
}

let image: Buffer | undefined;

/**
 * A sealed, close-on-exec memfd holding the trampoline. Made before the
 * seccomp filter is loaded (memfd_create, write and fcntl would be filtered).
 */
export function sealedTrampoline(): number {
  return kept >= 0 ? kept : makeTrampoline();
}

let kept = -1;

/**
 * A zygote makes one for all the processes its workers start (~0.4 ms each
 * otherwise): sealed, its content cannot change, so sharing it shares
 * nothing a container could use. Above the fds a worker hands on, and
 * close-on-exec: it ends with each process's exec. Best effort: without
 * it, each process makes its own (and reports why it cannot).
 */
export function keepTrampoline(): void {
  try {
    kept = makeTrampoline();
  } catch {
    kept = -1;
  }
}

function makeTrampoline(): number {
  image ??= trampolineImage();
  let fd: number;
  try {
    fd = libc.memfdCreate('koci-exec', C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING | C.MFD_EXEC);
  } catch {
    fd = libc.memfdCreate('koci-exec', C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING); // before kernel 6.3: no MFD_EXEC, memfds are executable
  }
  try {
    for (let off = 0; off < image.length; ) off += writeSync(fd, image, off);
    libc.fcntl(fd, C.F_ADD_SEALS, C.F_SEAL_SEAL | C.F_SEAL_SHRINK | C.F_SEAL_GROW | C.F_SEAL_WRITE);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return fd;
}

/**
 * execve the program through the trampoline in fd (from sealedTrampoline).
 * By /proc/self/fd/N where the container has a /proc: the seccomp filter is
 * in already, and a profile that allows the program's execve may not allow
 * execveat; without /proc, execveat.
 */
export function execThroughTrampoline(fd: number, exe: string, argv: string[], env: string[]): never {
  const args = [TRAMPOLINE_ARGV0, exe, ...argv];
  try {
    libc.execve(`/proc/self/fd/${fd}`, args, env);
  } catch (e) {
    if (!(SyscallError.is(e) && e.code === 'ENOENT')) throw e;
  }
  return libc.execveatFd(fd, args, env);
}
