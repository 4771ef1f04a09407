/**
 * Preloaded into a keyraft member by `watch-bench --keyraft-profile DIR` (NODE_OPTIONS=--require
 * this file): Node refuses --cpu-prof in NODE_OPTIONS, so the profile is taken through the
 * inspector instead, from start-up to exit, and written to DIR as a .cpuprofile that Chrome's
 * DevTools or `node bench/watch/profile-summary.js` read.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.KEYRAFT_CPU_PROFILE_DIR;
if (dir !== undefined && dir !== '') {
  const session = new Session();
  session.connect();
  // The main thread's own session answers synchronously, so the profile can be taken in 'exit'.
  session.post('Profiler.setSamplingInterval', { interval: 200 });
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.once('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (err !== null) return;
      writeFileSync(join(dir, `keyraft-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
