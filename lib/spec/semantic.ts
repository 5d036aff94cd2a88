/**
 * Checks on config.json that JSON Schema cannot express: cross-field rules
 * from the runtime-spec text (MUST/REQUIRED wording) and the cheap, important
 * refusals runc's config validator also makes. Runs only on a document that
 * already passed the schemas, so shapes and types can be trusted here.
 */
import type { ValidationIssue } from '../errors';
import { capabilityIssues } from '../security/capability-names';
import type { Hook, LinuxNamespace, LinuxNamespaceType, Spec } from './types';

/** ociVersion range koci understands: 1.0.0 up to (not including) 1.4.0 */
export const SUPPORTED_OCI_VERSIONS = '1.0.0 through 1.3.x';

/** JSON pointer for a path of keys, escaped per RFC 6901 */
export function pointer(...parts: Array<string | number>): string {
  return parts.map((p) => '/' + String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

const SEMVER = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

function ociVersionIssue(v: string): string | undefined {
  const m = SEMVER.exec(v);
  if (!m) return `ociVersion ${JSON.stringify(v)} is not a SemVer version; koci supports ${SUPPORTED_OCI_VERSIONS}`;
  const [major, minor, patch, pre] = [Number(m[1]), Number(m[2]), Number(m[3]), m[4]];
  // 1.0.0-rcN predates 1.0.0 and had a different config layout.
  const below = major < 1 || (major === 1 && minor === 0 && patch === 0 && pre !== undefined);
  const above = major > 1 || (major === 1 && minor > 3);
  if (below || above) return `ociVersion ${JSON.stringify(v)} is not supported; koci supports ${SUPPORTED_OCI_VERSIONS}`;
  return undefined;
}

const isAbs = (p: string) => p.startsWith('/');

/** sysctls that live in the IPC namespace (besides fs.mqueue.*) */
const IPC_SYSCTLS = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

/**
 * Split a sysctl key into components. Either '.' or '/' separates (sysctl(8)); the
 * first separator decides which, the other is then an ordinary character
 * (an interface name such as eth0.100 keeps its dot in "net/ipv4/conf/eth0.100/...").
 */
function sysctlParts(key: string): { sep: string; parts: string[] } {
  const first = key.search(/[./]/);
  const sep = first >= 0 && key[first] === '/' ? '/' : '.';
  return { sep, parts: key.split(sep) };
}

function sysctlIssues(spec: Spec, has: (t: LinuxNamespaceType) => boolean, out: ValidationIssue[]): void {
  const sysctl = spec.linux?.sysctl;
  if (!sysctl) return;
  for (const key of Object.keys(sysctl)) {
    const at = pointer('linux', 'sysctl', key);
    const { sep, parts } = sysctlParts(key);
    if (/[\s\0]/.test(key) || parts.length < 2 || parts.some((p) => p === '' || p === '.' || p === '..')) {
      out.push({ pointer: at, rule: 'sysctl-key', message: `sysctl key ${JSON.stringify(key)} is not a well-formed sysctl name` });
      continue;
    }
    // Dotted form, for the prefix and name rules below.
    const name = sep === '/' ? parts.join('.') : key;
    let need: LinuxNamespaceType | undefined;
    if (IPC_SYSCTLS.has(name) || name.startsWith('fs.mqueue.')) need = 'ipc';
    else if (name.startsWith('net.')) need = 'network';
    else if (name === 'kernel.domainname') need = 'uts';
    else if (name === 'kernel.hostname') {
      out.push({ pointer: at, rule: 'sysctl-namespace', message: `sysctl ${name} conflicts with the hostname field; set "hostname" instead` });
      continue;
    } else {
      // Not namespaced: writing it would change the host.
      out.push({ pointer: at, rule: 'sysctl-namespace', message: `sysctl ${name} is not namespaced and cannot be set for a container` });
      continue;
    }
    if (!has(need)) {
      out.push({ pointer: at, rule: 'sysctl-namespace', message: `sysctl ${name} needs a ${need} namespace in linux.namespaces` });
    }
  }
}

function namespaceIssues(spec: Spec, out: ValidationIssue[]): Map<LinuxNamespaceType, LinuxNamespace> {
  const byType = new Map<LinuxNamespaceType, LinuxNamespace>();
  (spec.linux?.namespaces ?? []).forEach((ns, i) => {
    if (byType.has(ns.type)) {
      out.push({ pointer: pointer('linux', 'namespaces', i, 'type'), rule: 'duplicate-namespace', message: `namespace type ${ns.type} is listed more than once` });
    } else {
      byType.set(ns.type, ns);
    }
    if (ns.path !== undefined && !isAbs(ns.path)) {
      out.push({ pointer: pointer('linux', 'namespaces', i, 'path'), rule: 'absolute-path', message: `namespace path ${JSON.stringify(ns.path)} must be absolute` });
    }
  });
  return byType;
}

function userNamespaceIssues(spec: Spec, userns: LinuxNamespace | undefined, out: ValidationIssue[]): void {
  const linux = spec.linux ?? {};
  const uid = linux.uidMappings !== undefined && linux.uidMappings.length > 0;
  const gid = linux.gidMappings !== undefined && linux.gidMappings.length > 0;
  if (!userns) {
    if (uid || gid) {
      out.push({
        pointer: pointer('linux', uid ? 'uidMappings' : 'gidMappings'),
        rule: 'mappings-without-userns',
        message: 'uidMappings/gidMappings are set but linux.namespaces has no user namespace',
      });
    }
    return;
  }
  if (userns.path === undefined && !(uid && gid)) {
    out.push({
      pointer: pointer('linux', uid ? 'gidMappings' : 'uidMappings'),
      rule: 'userns-mappings',
      message: 'a new user namespace needs both linux.uidMappings and linux.gidMappings',
    });
  }
}

function processIssues(spec: Spec, out: ValidationIssue[]): void {
  const p = spec.process;
  if (!p) return;
  if (!isAbs(p.cwd)) {
    out.push({ pointer: '/process/cwd', rule: 'absolute-path', message: `process.cwd ${JSON.stringify(p.cwd)} must be absolute` });
  }
  if (!p.args || p.args.length === 0) {
    out.push({ pointer: '/process/args', rule: 'args-required', message: 'process.args must have at least one entry' });
  }
  // as runc: every entry is NAME=VALUE with a non-empty NAME
  (p.env ?? []).forEach((e, i) => {
    if (e.indexOf('=') <= 0) out.push({ pointer: pointer('process', 'env', i), rule: 'env-format', message: `process.env entry ${JSON.stringify(e)} is not NAME=VALUE` });
  });
  const seen = new Set<string>();
  (p.rlimits ?? []).forEach((r, i) => {
    if (seen.has(r.type)) {
      out.push({ pointer: pointer('process', 'rlimits', i, 'type'), rule: 'duplicate-rlimit', message: `rlimit ${r.type} is listed more than once` });
    }
    seen.add(r.type);
    if (r.soft > r.hard) {
      out.push({ pointer: pointer('process', 'rlimits', i, 'soft'), rule: 'rlimit-soft-above-hard', message: `rlimit ${r.type}: soft limit ${r.soft} is above hard limit ${r.hard}` });
    }
  });
  const s = p.scheduler;
  if (s) {
    if (s.nice !== undefined && (s.nice < -20 || s.nice > 19)) {
      out.push({ pointer: '/process/scheduler/nice', rule: 'scheduler-nice', message: `scheduler.nice ${s.nice} is outside -20..19` });
    }
    if (s.priority !== undefined && s.priority !== 0 && s.policy !== 'SCHED_FIFO' && s.policy !== 'SCHED_RR') {
      out.push({ pointer: '/process/scheduler/priority', rule: 'scheduler-params', message: 'scheduler.priority applies only to SCHED_FIFO and SCHED_RR' });
    }
    if (s.policy !== 'SCHED_DEADLINE' && (s.runtime || s.deadline || s.period)) {
      out.push({ pointer: '/process/scheduler/policy', rule: 'scheduler-params', message: 'scheduler runtime/deadline/period apply only to SCHED_DEADLINE' });
    }
  }
}

function hookIssues(spec: Spec, out: ValidationIssue[]): void {
  for (const [stage, hooks] of Object.entries(spec.hooks ?? {}) as Array<[string, Hook[] | undefined]>) {
    (hooks ?? []).forEach((h, i) => {
      if (!isAbs(h.path)) {
        out.push({ pointer: pointer('hooks', stage, i, 'path'), rule: 'absolute-path', message: `hook path ${JSON.stringify(h.path)} must be absolute` });
      }
    });
  }
}

/** Every semantic problem in a schema-valid config; [] when it is usable. */
export function semanticIssues(spec: Spec): ValidationIssue[] {
  const out: ValidationIssue[] = [];

  const versionProblem = ociVersionIssue(spec.ociVersion);
  if (versionProblem) out.push({ pointer: '/ociVersion', rule: 'oci-version', message: versionProblem });

  // Linux requires root (it is optional only for Hyper-V / VM platforms).
  if (!spec.root) out.push({ pointer: '/root', rule: 'root-required', message: 'root.path is required on Linux' });
  else if (spec.root.path === '') out.push({ pointer: '/root/path', rule: 'root-required', message: 'root.path must not be empty' });

  // Relative mount destinations are accepted (runtime-spec 1.2+ reads them as
  // relative to "/", and runc accepts them for every version): see
  // containerDestination in rootfs/mounts.ts.

  processIssues(spec, out);
  out.push(...capabilityIssues(spec.process?.capabilities));
  hookIssues(spec, out);

  const ns = namespaceIssues(spec, out);
  const has = (t: LinuxNamespaceType) => ns.has(t);
  userNamespaceIssues(spec, ns.get('user'), out);

  if (spec.hostname && !has('uts')) {
    out.push({ pointer: '/hostname', rule: 'hostname-without-uts', message: 'hostname is set but linux.namespaces has no uts namespace' });
  }
  if (spec.domainname && !has('uts')) {
    out.push({ pointer: '/domainname', rule: 'domainname-without-uts', message: 'domainname is set but linux.namespaces has no uts namespace' });
  }

  const linux = spec.linux;
  if (linux?.timeOffsets && Object.keys(linux.timeOffsets).length > 0) {
    const timens = ns.get('time');
    if (!timens) {
      out.push({ pointer: '/linux/timeOffsets', rule: 'time-offsets-without-timens', message: 'timeOffsets are set but linux.namespaces has no time namespace' });
    } else if (timens.path !== undefined) {
      // Offsets can only be written before a time namespace has any process in it.
      out.push({ pointer: '/linux/timeOffsets', rule: 'time-offsets-joined-timens', message: 'timeOffsets cannot be applied to a joined time namespace (one with a path)' });
    }
  }

  if (((linux?.maskedPaths?.length ?? 0) > 0 || (linux?.readonlyPaths?.length ?? 0) > 0) && !has('mount')) {
    out.push({
      pointer: (linux?.maskedPaths?.length ?? 0) > 0 ? '/linux/maskedPaths' : '/linux/readonlyPaths',
      rule: 'paths-without-mountns',
      message: 'maskedPaths/readonlyPaths need a mount namespace in linux.namespaces',
    });
  }

  (linux?.devices ?? []).forEach((d, i) => {
    // The spec allows devices outside /dev, but the path is inside the container and absolute.
    if (!isAbs(d.path)) {
      out.push({ pointer: pointer('linux', 'devices', i, 'path'), rule: 'absolute-path', message: `device path ${JSON.stringify(d.path)} must be absolute` });
    }
    if (d.type !== 'p' && (d.major === undefined || d.minor === undefined)) {
      out.push({ pointer: pointer('linux', 'devices', i), rule: 'device-numbers', message: `device ${d.path}: major and minor are required unless type is "p"` });
    }
  });

  const closID = linux?.intelRdt?.closID;
  if (closID !== undefined && (closID === '.' || closID === '..' || closID.includes('/'))) {
    // It names a directory under /sys/fs/resctrl.
    out.push({ pointer: '/linux/intelRdt/closID', rule: 'intelrdt-closid', message: `intelRdt.closID ${JSON.stringify(closID)} is not a valid resctrl group name` });
  }

  sysctlIssues(spec, has, out);
  return out;
}
