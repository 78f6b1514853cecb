/**
 * CPU accounting for the benches that share a small machine with the broker, Postgres and their own
 * child processes: a figure alone does not say which of them limited it, the CPU spent does.
 */
import { readFileSync } from 'node:fs';

/** Busy and total jiffies of the whole machine, from /proc/stat. */
function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const first = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = first.trim().split(/\s+/).slice(1).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

export interface CpuUse {
  /** This process, user + system, ms. */
  readonly selfMs: number;
  /** Share of the machine's CPU time that was busy (all processes), %; NaN without /proc/stat. */
  readonly machineBusy: number;
}

/** Starts counting; the returned function reads what was used since. */
export function cpuMeter(): () => CpuUse {
  const self = process.cpuUsage();
  const ticks = machineTicks();
  return () => {
    const used = process.cpuUsage(self);
    const after = machineTicks();
    return {
      selfMs: (used.user + used.system) / 1000,
      machineBusy:
        ticks && after
          ? (100 * (after.busy - ticks.busy)) / Math.max(after.total - ticks.total, 1)
          : Number.NaN,
    };
  };
}
