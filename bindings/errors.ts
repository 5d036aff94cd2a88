/**
 * The one error type for a failed kernel call. It carries the syscall, the
 * errno number and name, and the path involved when there is one, so a caller
 * (or the CLI's one-line message) can say exactly what failed.
 */
import { errnoMessage, errnoName } from './errno';

export class SyscallError extends Error {
  override readonly name = 'SyscallError';
  /** errno name, e.g. 'ENOENT' */
  readonly code: string;
  constructor(
    readonly syscall: string,
    readonly errno: number,
    readonly path?: string,
    /** which container-setup step was running (set by init code) */
    readonly step?: string,
  ) {
    super(SyscallError.describe(syscall, errno, path, step));
    this.code = errnoName(errno);
  }

  static describe(syscall: string, errno: number, path?: string, step?: string): string {
    const where = path !== undefined ? ` ${path}` : '';
    const during = step ? `${step}: ` : '';
    return `${during}${syscall}${where}: ${errnoName(errno)} (${errnoMessage(errno)})`;
  }

  /** the same error, attributed to a setup step */
  withStep(step: string): SyscallError {
    return this.step ? this : new SyscallError(this.syscall, this.errno, this.path, step);
  }

  /** brand check that survives module duplication */
  static is(e: unknown): e is SyscallError {
    return e instanceof Error && (e as { name?: string }).name === 'SyscallError';
  }
}
