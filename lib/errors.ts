/**
 * koci's error family. Every failure a caller can see is one of these, with
 * stable fields (`code` and the class's own) so callers branch on data, not
 * on message text. Errors cross process boundaries (init -> runtime, helper ->
 * library) as JSON through toWire/fromWire.
 */
import { SyscallError } from '../bindings/errors';
export { SyscallError };

export class KociError extends Error {
  override name = 'KociError';
  code = 'EKOCI';
  static is(e: unknown): e is KociError {
    return e instanceof Error && typeof (e as { code?: unknown }).code === 'string' && (e as unknown as { code: string }).code.startsWith('EKOCI');
  }
}

/** a container ID that is empty, too long, or could name a path outside the state root */
export class InvalidIdError extends KociError {
  override name = 'InvalidIdError';
  override code = 'EKOCI_INVALID_ID';
  constructor(readonly id: string, reason: string) {
    super(`invalid container id ${JSON.stringify(id)}: ${reason}`);
  }
}

export interface ValidationIssue {
  /** JSON pointer into config.json, '' for the document itself */
  pointer: string;
  /** the schema keyword or semantic rule that was broken, e.g. 'type', 'required', 'absolute-path' */
  rule: string;
  message: string;
}

/**
 * config.json is malformed, breaks the runtime-spec schema, or asks for something contradictory.
 * The message is one line naming each issue's pointer, message and rule:
 * `invalid config.json: /process/args must be array (rule: type); /mounts/0/destination ...`
 */
export class InvalidSpecError extends KociError {
  override name = 'InvalidSpecError';
  override code = 'EKOCI_INVALID_SPEC';
  constructor(readonly file: string, readonly issues: ValidationIssue[]) {
    super(
      `invalid ${file}: ` +
        issues
          .map((i) => `${i.pointer ? `${i.pointer} ` : ''}${i.message} (rule: ${i.rule})`.replace(/[\r\n]+/g, ' '))
          .join('; '),
    );
  }
}

/** the bundle directory, its config.json or its rootfs is missing or unusable */
export class BundleError extends KociError {
  override name = 'BundleError';
  override code = 'EKOCI_BUNDLE';
  constructor(readonly path: string, reason: string) {
    super(`bundle: ${reason}: ${path}`);
  }
}

export class ContainerNotFoundError extends KociError {
  override name = 'ContainerNotFoundError';
  override code = 'EKOCI_NOT_FOUND';
  constructor(readonly id: string) {
    super(`container ${JSON.stringify(id)} does not exist`);
  }
}

export class ContainerExistsError extends KociError {
  override name = 'ContainerExistsError';
  override code = 'EKOCI_EXISTS';
  constructor(readonly id: string) {
    super(`container ${JSON.stringify(id)} already exists`);
  }
}

/** the operation is not allowed in the container's current status */
export class IncorrectStatusError extends KociError {
  override name = 'IncorrectStatusError';
  override code = 'EKOCI_STATUS';
  constructor(readonly id: string, readonly operation: string, readonly status: string, hint = '') {
    super(`cannot ${operation} container ${JSON.stringify(id)} in status ${status}${hint ? ` (${hint})` : ''}`);
  }
}

/** a hook exited non-zero, could not start, or ran past its timeout */
export class HookError extends KociError {
  override name = 'HookError';
  override code = 'EKOCI_HOOK';
  constructor(readonly hook: string, readonly path: string, reason: string) {
    super(`${hook} hook ${path}: ${reason}`);
  }
}

/** a feature the config asks for that this build or this host cannot provide */
export class UnsupportedError extends KociError {
  override name = 'UnsupportedError';
  override code = 'EKOCI_UNSUPPORTED';
  /** the config field koci cannot honour, as a dotted path ('linux.netDevices'), when one is to blame */
  constructor(message: string, readonly field?: string) {
    super(message);
  }
}

/** linux.resources or linux.cgroupsPath asks for something this host's cgroups cannot do (or a value they refuse) */
export class CgroupError extends KociError {
  override name = 'CgroupError';
  override code = 'EKOCI_CGROUP';
  /** the config field, as a dotted path ('linux.resources.network.classID') */
  constructor(readonly field: string, reason: string, readonly path?: string) {
    super(`${field}: ${reason}`);
  }
}

/** container setup failed in the init process without a failing syscall (a bad path, a missing executable) */
export class SetupError extends KociError {
  override name = 'SetupError';
  override code = 'EKOCI_SETUP';
  constructor(readonly step: string, message: string, readonly path?: string) {
    super(`${step}: ${message}`);
  }
}

/** a failure, plus whatever went wrong while undoing the half-made container */
export class CreateError extends KociError {
  override name = 'CreateError';
  override code = 'EKOCI_CREATE';
  constructor(override readonly cause: Error, readonly cleanup: Error[]) {
    super(cause.message + (cleanup.length ? `; cleanup also failed: ${cleanup.map((e) => e.message).join('; ')}` : ''));
  }
}

// ---- wire format -------------------------------------------------------

export interface WireError {
  name: string;
  message: string;
  [field: string]: unknown;
}

export function toWire(e: unknown): WireError {
  if (e instanceof Error) {
    const out: WireError = { name: e.name, message: e.message };
    for (const [k, v] of Object.entries(e)) {
      if (k === 'cause' && v instanceof Error) out.cause = toWire(v);
      else if (k === 'cleanup' && Array.isArray(v)) out.cleanup = v.map(toWire);
      else out[k] = v;
    }
    return out;
  }
  return { name: 'Error', message: String(e) };
}

/** rebuild the typed error a WireError came from (a plain KociError when unknown) */
export function fromWire(w: WireError): Error {
  const s = (k: string) => (typeof w[k] === 'string' ? (w[k] as string) : undefined);
  let e: Error;
  switch (w.name) {
    case 'SyscallError':
      return new SyscallError(s('syscall') ?? '?', Number(w.errno), s('path'), s('step'));
    case 'InvalidIdError': e = new InvalidIdError(s('id') ?? '', ''); break;
    case 'InvalidSpecError': e = new InvalidSpecError(s('file') ?? 'config.json', (w.issues as ValidationIssue[]) ?? []); break;
    case 'BundleError': e = new BundleError(s('path') ?? '', ''); break;
    case 'ContainerNotFoundError': e = new ContainerNotFoundError(s('id') ?? ''); break;
    case 'ContainerExistsError': e = new ContainerExistsError(s('id') ?? ''); break;
    case 'IncorrectStatusError': e = new IncorrectStatusError(s('id') ?? '', s('operation') ?? '', s('status') ?? ''); break;
    case 'HookError': e = new HookError(s('hook') ?? '', s('path') ?? '', ''); break;
    case 'UnsupportedError': e = new UnsupportedError('', s('field')); break;
    case 'SetupError': e = new SetupError(s('step') ?? '', '', s('path')); break;
    case 'CgroupError': e = new CgroupError(s('field') ?? '', '', s('path')); break;
    case 'CreateError':
      e = new CreateError(fromWire(w.cause as WireError), ((w.cleanup as WireError[]) ?? []).map(fromWire));
      break;
    default: e = new KociError(''); e.name = w.name;
  }
  e.message = w.message;
  return e;
}
