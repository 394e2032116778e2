import { describe, expect, it } from "vitest";
import { PRESSURE_GUARD, fullStallMicros, thrashing } from "../../src/agent/expendable.js";

const second = (stallShare: number) => ({ stallUs: stallShare * 1_000_000, wallUs: 1_000_000 });

describe("the VM guest's guard against thrashing", () => {
  it("reads the full-stall total from a cgroup's memory.pressure", () => {
    const pressure = "some avg10=91.00 avg60=40.10 avg300=9.00 total=48123456\nfull avg10=88.50 avg60=38.00 avg300=8.50 total=45000123\n";
    expect(fullStallMicros(pressure)).toBe(45000123);
    // A kernel with PSI but no "full" line for this resource (older cpu.pressure) gives nothing.
    expect(fullStallMicros("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")).toBeNull();
  });

  it("calls thrashing only a whole window mostly stalled, not a burst or a busy but progressing workload", () => {
    const window = PRESSURE_GUARD.windowTicks;
    expect(thrashing(Array.from({ length: window }, () => second(0.9)))).toBe(true);
    // A short burst of stalls (a build's link step near the limit) is not enough...
    expect(thrashing(Array.from({ length: window - 1 }, () => second(1)))).toBe(false);
    expect(thrashing([...Array.from({ length: window - 2 }, () => second(0.1)), second(1), second(1)])).toBe(false);
    // ...nor is steady pressure below the share.
    expect(thrashing(Array.from({ length: window }, () => second(PRESSURE_GUARD.stallShare - 0.1)))).toBe(false);
    // Ticks that came late (a starved agent) weigh by their wall time.
    expect(thrashing([...Array.from({ length: window - 1 }, () => second(0)), { stallUs: 30_000_000, wallUs: 30_000_000 }])).toBe(true);
  });
});
