/**
 * What the bench reports say about the machine they ran on: the share of CPU
 * time the hypervisor took during a run (bench/host.ts, from /proc/stat), and
 * how AsyncLocalStorage works on the Node line the figures come from.
 */
import { describe, expect, it } from 'vitest';
import { cpuTimes, describeHost, hostRecord, parseProcStat, stealShare } from '../bench/host.js';
import { alsMechanism } from '../bench/report.js';

// /proc/stat as Linux writes it: user nice system idle iowait irq softirq steal guest guest_nice.
const BEFORE = 'cpu  27923 0 12296 51800 188 0 3985 34 7 0\ncpu0 13506 0 6671 26011 11 0 1873 11 0 0\nintr 1 2 3\n';
const AFTER = 'cpu  28923 0 12796 52100 188 0 4085 134 9 0\ncpu0 14006 0 6921 26161 11 0 1923 61 0 0\n';

describe('bench/host.ts', () => {
  it('reads the aggregate cpu line, leaving guest time out of the total (it is counted in user already)', () => {
    expect(parseProcStat(BEFORE)).toEqual({ total: 27923 + 12296 + 51800 + 188 + 3985 + 34, steal: 34 });
    expect(parseProcStat('cpu0 1 2 3 4 5 6 7 8\n')).toBeUndefined();
    expect(parseProcStat('cpu  1 2 x 4 5 6 7 8\n')).toBeUndefined();
  });

  it('gives the stolen share of the time between two readings, and nothing without both', () => {
    // 1000 + 500 + 300 + 100 + 100 = 2000 ticks passed, 100 of them stolen.
    expect(stealShare(parseProcStat(BEFORE), parseProcStat(AFTER))).toBeCloseTo(100 / 2000, 10);
    expect(stealShare(undefined, parseProcStat(AFTER))).toBeUndefined();
    expect(stealShare(parseProcStat(AFTER), parseProcStat(AFTER))).toBeUndefined();
    expect(describeHost({ cpus: 2, cpuModel: 'AMD EPYC', steal: 0.05 })).toBe('2 × AMD EPYC, 5.0 % of CPU time stolen by the hypervisor');
    expect(describeHost({ cpus: 2, cpuModel: 'AMD EPYC' })).toBe('2 × AMD EPYC, steal time not readable');
  });

  it('reads this machine (Linux): a share from 0 to 1 across a second of work', async () => {
    const before = cpuTimes();
    expect(before).toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const host = hostRecord(before, cpuTimes());
    expect(host.cpus).toBeGreaterThan(0);
    expect(host.steal).toBeGreaterThanOrEqual(0);
    expect(host.steal).toBeLessThanOrEqual(1);
  });

  it("names AsyncLocalStorage's mechanism by Node line: AsyncContextFrame from 24, async hooks before", () => {
    for (const node of ['v24.21.0', 'v26.12.1']) expect(alsMechanism(node)).toContain('AsyncContextFrame');
    expect(alsMechanism('v22.23.5')).toContain('async hooks');
    expect(alsMechanism('v22.23.5')).not.toContain('AsyncContextFrame');
  });
});
