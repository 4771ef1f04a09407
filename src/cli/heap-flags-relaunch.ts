/**
 * Imported first by keyraft.ts, for its side effect: where Node can, the process relaunches itself
 * here with the heap flag of platform/heap-tuning.ts, before the server's modules load (imported
 * after this, they would load once in the process that is replaced and again in its successor).
 */
import { relaunchWithHeapFlags, serverHeapFlags } from '../platform/heap-tuning.js';
import { Limits } from '../platform/limits.js';

/** True when this process runs with the launch flag (or the user's own semi-space size); false on Node without process.execve. */
export const launchFlagsApplied = relaunchWithHeapFlags(serverHeapFlags(Limits.heapSemiSpaceMaxBytes));
