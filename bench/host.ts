/**
 * What the host was doing while a benchmark ran: on a virtual machine the
 * hypervisor can run other guests on our CPUs ("steal"), and the same code
 * then costs more per request and its ratios move (docs/benchmarks.md, "The
 * example app": the bare route took 22.3 µs of server CPU per request on one
 * day and 14.7 µs on the next, the code unchanged). A run records the CPU
 * model and the share of CPU time stolen during its HTTP rounds, so a reader
 * can tell a busy host from a change in the code.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/** The machine's CPU time so far, in clock ticks: all of it, and what the hypervisor took (`steal`). */
export interface CpuTimes {
  total: number;
  steal: number;
}

/**
 * The aggregate `cpu` line of /proc/stat: user nice system idle iowait irq softirq steal guest guest_nice.
 * guest and guest_nice are already counted in user and nice, so they are left out of the total.
 */
export function parseProcStat(text: string): CpuTimes | undefined {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) return undefined;
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (fields.length < 8 || fields.some((n) => !Number.isFinite(n))) return undefined;
  return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7]! };
}

/** This machine's CPU times now, or undefined where /proc/stat cannot be read (not Linux). */
export function cpuTimes(): CpuTimes | undefined {
  try {
    return parseProcStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}

/** The share (0–1) of the CPU time between two readings that the hypervisor took; undefined without both. */
export function stealShare(before: CpuTimes | undefined, after: CpuTimes | undefined): number | undefined {
  if (before === undefined || after === undefined || after.total <= before.total) return undefined;
  return (after.steal - before.steal) / (after.total - before.total);
}

/** The host as a run records it. */
export interface HostRecord {
  cpus: number;
  cpuModel: string;
  /** Share of CPU time stolen by the hypervisor during the HTTP rounds (0–1), where it could be read. */
  steal?: number;
}

/** `cpus` and `cpuModel` now, and the steal share between two readings. */
export function hostRecord(before?: CpuTimes, after?: CpuTimes): HostRecord {
  const list = cpus();
  const steal = stealShare(before, after);
  return { cpus: list.length, cpuModel: list[0]?.model.trim() ?? 'unknown', ...(steal !== undefined ? { steal } : {}) };
}

/** Runs `work` (a benchmark's HTTP rounds) and records the host over it: what both runners keep beside their figures. */
export async function duringHost<T>(work: () => Promise<T>): Promise<[T, HostRecord]> {
  const before = cpuTimes();
  const result = await work();
  return [result, hostRecord(before, cpuTimes())];
}

/** "2 × AMD EPYC, 0.1 % of CPU time stolen by the hypervisor". */
export function describeHost(host: HostRecord): string {
  const steal = host.steal === undefined ? 'steal time not readable' : `${(host.steal * 100).toFixed(1)} % of CPU time stolen by the hypervisor`;
  return `${host.cpus} × ${host.cpuModel}, ${steal}`;
}
