/**
 * TypeScript shapes of the OCI runtime-spec 1.3.0 documents: config.json,
 * the state document and the features document. Property names are the JSON
 * names; a field is optional exactly when the spec lets it be absent.
 * These are compile-time types only: validation is lib/spec/validate.ts.
 */

// ---- config.json root ---------------------------------------------------

export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: Root;
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: Linux;
  solaris?: Solaris;
  windows?: Windows;
  vm?: VM;
  zos?: ZOS;
  freebsd?: FreeBSD;
}

// ---- process ------------------------------------------------------------

export interface Process {
  terminal?: boolean;
  consoleSize?: Box;
  user: User;
  args?: string[];
  /** Windows only: the whole command line as one string */
  commandLine?: string;
  env?: string[];
  cwd: string;
  capabilities?: LinuxCapabilities;
  rlimits?: POSIXRlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  /** 1.2+ */
  scheduler?: Scheduler;
  selinuxLabel?: string;
  /** 1.2+ */
  ioPriority?: LinuxIOPriority;
  /** 1.2+ */
  execCPUAffinity?: CPUAffinity;
}

export interface Box {
  height: number;
  width: number;
}

export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
  /** Windows only */
  username?: string;
}

export type Capability = string;

export interface LinuxCapabilities {
  bounding?: Capability[];
  effective?: Capability[];
  inheritable?: Capability[];
  permitted?: Capability[];
  ambient?: Capability[];
}

export type RlimitType = string; // 'RLIMIT_NOFILE', 'RLIMIT_CORE', ... (platform-dependent list)

export interface POSIXRlimit {
  type: RlimitType;
  hard: number;
  soft: number;
}

export type SchedulerPolicy =
  | 'SCHED_OTHER'
  | 'SCHED_FIFO'
  | 'SCHED_RR'
  | 'SCHED_BATCH'
  | 'SCHED_ISO'
  | 'SCHED_IDLE'
  | 'SCHED_DEADLINE';

export type SchedulerFlag =
  | 'SCHED_FLAG_RESET_ON_FORK'
  | 'SCHED_FLAG_RECLAIM'
  | 'SCHED_FLAG_DL_OVERRUN'
  | 'SCHED_FLAG_KEEP_POLICY'
  | 'SCHED_FLAG_KEEP_PARAMS'
  | 'SCHED_FLAG_UTIL_CLAMP_MIN'
  | 'SCHED_FLAG_UTIL_CLAMP_MAX';

/** sched_setattr(2) parameters for the container process */
export interface Scheduler {
  policy: SchedulerPolicy;
  nice?: number;
  priority?: number;
  flags?: SchedulerFlag[];
  /** SCHED_DEADLINE only, nanoseconds */
  runtime?: number;
  deadline?: number;
  period?: number;
}

export type IOPriorityClass = 'IOPRIO_CLASS_RT' | 'IOPRIO_CLASS_BE' | 'IOPRIO_CLASS_IDLE';

export interface LinuxIOPriority {
  class: IOPriorityClass;
  priority: number;
}

/** CPU lists in cpuset syntax ("0-3,7") for `exec`ed processes */
export interface CPUAffinity {
  initial?: string;
  final?: string;
}

// ---- root, mounts, hooks ------------------------------------------------

export interface Root {
  path: string;
  readonly?: boolean;
}

export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
  /** 1.1+: id-mapped mount */
  uidMappings?: LinuxIDMapping[];
  gidMappings?: LinuxIDMapping[];
}

export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface Hooks {
  /** deprecated in favour of createRuntime/createContainer/startContainer */
  prestart?: Hook[];
  createRuntime?: Hook[];
  createContainer?: Hook[];
  startContainer?: Hook[];
  poststart?: Hook[];
  poststop?: Hook[];
}

// ---- linux --------------------------------------------------------------

export interface Linux {
  uidMappings?: LinuxIDMapping[];
  gidMappings?: LinuxIDMapping[];
  sysctl?: Record<string, string>;
  resources?: LinuxResources;
  cgroupsPath?: string;
  namespaces?: LinuxNamespace[];
  devices?: LinuxDevice[];
  seccomp?: LinuxSeccomp;
  /** 'private', 'shared', 'slave' or 'unbindable' */
  rootfsPropagation?: string;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  mountLabel?: string;
  intelRdt?: LinuxIntelRdt;
  /** 1.1+ */
  personality?: LinuxPersonality;
  /** 1.1+: keys are 'monotonic' and 'boottime' */
  timeOffsets?: Record<string, LinuxTimeOffset>;
  /** 1.2+: host interface name -> settings inside the container */
  netDevices?: Record<string, LinuxNetDevice>;
  /** 1.3+ */
  memoryPolicy?: LinuxMemoryPolicy;
}

export type LinuxNamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup' | 'time';

export interface LinuxNamespace {
  type: LinuxNamespaceType;
  /** join this existing namespace instead of creating one */
  path?: string;
}

export interface LinuxIDMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface LinuxTimeOffset {
  secs?: number;
  nanosecs?: number;
}

export interface LinuxNetDevice {
  name?: string;
}

export type MemoryPolicyMode =
  | 'MPOL_DEFAULT'
  | 'MPOL_BIND'
  | 'MPOL_INTERLEAVE'
  | 'MPOL_WEIGHTED_INTERLEAVE'
  | 'MPOL_PREFERRED'
  | 'MPOL_PREFERRED_MANY'
  | 'MPOL_LOCAL';

export type MemoryPolicyFlag = 'MPOL_F_NUMA_BALANCING' | 'MPOL_F_RELATIVE_NODES' | 'MPOL_F_STATIC_NODES';

/** set_mempolicy(2) for the container process */
export interface LinuxMemoryPolicy {
  mode: MemoryPolicyMode;
  /** node list in cpuset syntax ("0-3,7") */
  nodes?: string;
  flags?: MemoryPolicyFlag[];
}

export interface LinuxPersonality {
  domain: 'LINUX' | 'LINUX32';
  flags?: string[];
}

export interface LinuxDevice {
  path: string;
  /** 'c', 'b', 'u' or 'p' */
  type: string;
  /** required unless type is 'p' */
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface LinuxIntelRdt {
  closID?: string;
  l3CacheSchema?: string;
  memBwSchema?: string;
  /** 1.3+: raw lines for the resctrl `schemata` file */
  schemata?: string[];
  /** 1.3+ */
  enableMonitoring?: boolean;
  /** 1.1-1.2 only, replaced by enableMonitoring in 1.3; kept so older configs type-check */
  enableCMT?: boolean;
  enableMBM?: boolean;
}

// ---- linux.resources ----------------------------------------------------

export interface LinuxResources {
  devices?: LinuxDeviceCgroup[];
  memory?: LinuxMemory;
  cpu?: LinuxCPU;
  pids?: LinuxPids;
  blockIO?: LinuxBlockIO;
  hugepageLimits?: LinuxHugepageLimit[];
  network?: LinuxNetwork;
  rdma?: Record<string, LinuxRdma>;
  /** cgroup v2 files, name -> content */
  unified?: Record<string, string>;
}

export interface LinuxDeviceCgroup {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

export interface LinuxMemory {
  limit?: number;
  reservation?: number;
  swap?: number;
  /** deprecated */
  kernel?: number;
  kernelTCP?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
  useHierarchy?: boolean;
  /** 1.2+ */
  checkBeforeUpdate?: boolean;
}

export interface LinuxCPU {
  shares?: number;
  quota?: number;
  /** 1.2+ */
  burst?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
  /** 1.1+ */
  idle?: number;
}

export interface LinuxPids {
  /** optional since 1.3: absent leaves the limit unchanged, -1 means no limit, 0 is a real limit */
  limit?: number;
}

export interface LinuxWeightDevice {
  major: number;
  minor: number;
  weight?: number;
  leafWeight?: number;
}

export interface LinuxThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}

export interface LinuxBlockIO {
  weight?: number;
  leafWeight?: number;
  weightDevice?: LinuxWeightDevice[];
  throttleReadBpsDevice?: LinuxThrottleDevice[];
  throttleWriteBpsDevice?: LinuxThrottleDevice[];
  throttleReadIOPSDevice?: LinuxThrottleDevice[];
  throttleWriteIOPSDevice?: LinuxThrottleDevice[];
}

export interface LinuxHugepageLimit {
  pageSize: string;
  limit: number;
}

export interface LinuxInterfacePriority {
  name: string;
  priority: number;
}

export interface LinuxNetwork {
  classID?: number;
  priorities?: LinuxInterfacePriority[];
}

export interface LinuxRdma {
  hcaHandles?: number;
  hcaObjects?: number;
}

// ---- linux.seccomp ------------------------------------------------------

export type LinuxSeccompAction =
  | 'SCMP_ACT_KILL'
  | 'SCMP_ACT_KILL_PROCESS'
  | 'SCMP_ACT_KILL_THREAD'
  | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_TRACE'
  | 'SCMP_ACT_ALLOW'
  | 'SCMP_ACT_LOG'
  | 'SCMP_ACT_NOTIFY';

export type LinuxSeccompOperator =
  | 'SCMP_CMP_NE'
  | 'SCMP_CMP_LT'
  | 'SCMP_CMP_LE'
  | 'SCMP_CMP_EQ'
  | 'SCMP_CMP_GE'
  | 'SCMP_CMP_GT'
  | 'SCMP_CMP_MASKED_EQ';

export type LinuxSeccompFlag =
  | 'SECCOMP_FILTER_FLAG_TSYNC'
  | 'SECCOMP_FILTER_FLAG_LOG'
  | 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'
  | 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'
  | string;

export interface LinuxSeccomp {
  defaultAction: LinuxSeccompAction;
  defaultErrnoRet?: number;
  /** 'SCMP_ARCH_X86_64', ... */
  architectures?: string[];
  flags?: LinuxSeccompFlag[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: LinuxSyscall[];
}

export interface LinuxSyscall {
  names: string[];
  action: LinuxSeccompAction;
  errnoRet?: number;
  args?: LinuxSeccompArg[];
}

export interface LinuxSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: LinuxSeccompOperator;
}

// ---- other platforms (typed for completeness; koci runs Linux only) ------

export interface Solaris {
  milestone?: string;
  limitpriv?: string;
  maxShmMemory?: string;
  anet?: Array<{
    linkname?: string;
    lowerLink?: string;
    allowedAddress?: string;
    configureAllowedAddress?: string;
    defrouter?: string;
    linkProtection?: string;
    macAddress?: string;
  }>;
  cappedCPU?: { ncpus?: string };
  cappedMemory?: { physical?: string; swap?: string };
}

export interface Windows {
  layerFolders: string[];
  devices?: Array<{ id: string; idType: string }>;
  resources?: {
    memory?: { limit?: number };
    cpu?: { count?: number; shares?: number; maximum?: number; affinity?: Array<{ mask: number; group: number }> };
    storage?: { iops?: number; bps?: number; sandboxSize?: number };
  };
  credentialSpec?: unknown;
  servicing?: boolean;
  ignoreFlushesDuringBoot?: boolean;
  hyperv?: { utilityVMPath?: string };
  network?: {
    endpointList?: string[];
    allowUnqualifiedDNSQuery?: boolean;
    DNSSearchList?: string[];
    networkSharedContainerName?: string;
    networkNamespace?: string;
  };
}

export interface VM {
  hypervisor?: { path: string; parameters?: string[] };
  kernel: { path: string; parameters?: string[]; initrd?: string };
  image?: { path: string; format: string };
  /** 1.3+: vCPUs, memory, device tree for the guest; not interpreted by koci */
  hwConfig?: Record<string, unknown>;
}

export interface ZOS {
  namespaces?: Array<{ type: 'pid' | 'mount' | 'ipc' | 'uts'; path?: string }>;
}

/** 1.3+: FreeBSD jails. Not interpreted by koci, so left untyped. */
export type FreeBSD = Record<string, unknown>;

// ---- state document -----------------------------------------------------

/** 'paused' is runc's extension: a running container whose cgroup is frozen */
export type ContainerStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

export interface State {
  ociVersion: string;
  id: string;
  status: ContainerStatus;
  /** present unless status is 'stopped' (or 'creating' before the process exists) */
  pid?: number;
  /** absolute path of the bundle directory */
  bundle: string;
  annotations?: Record<string, string>;
}

// ---- features document (1.1+, `runtime features`) -----------------------

export interface Features {
  ociVersionMin: string;
  ociVersionMax: string;
  hooks?: string[];
  mountOptions?: string[];
  linux?: LinuxFeatures;
  annotations?: Record<string, string>;
  potentiallyUnsafeConfigAnnotations?: string[];
}

export interface LinuxFeatures {
  namespaces?: LinuxNamespaceType[];
  capabilities?: Capability[];
  cgroup?: { v1?: boolean; v2?: boolean; systemd?: boolean; systemdUser?: boolean; rdma?: boolean };
  seccomp?: {
    enabled?: boolean;
    actions?: string[];
    operators?: string[];
    archs?: string[];
    knownFlags?: string[];
    supportedFlags?: string[];
  };
  apparmor?: { enabled?: boolean };
  selinux?: { enabled?: boolean };
  intelRdt?: { enabled?: boolean; schemata?: boolean };
  memoryPolicy?: { modes?: string[]; flags?: string[] };
  mountExtensions?: { idmap?: { enabled?: boolean } };
  netDevices?: { enabled?: boolean };
}
