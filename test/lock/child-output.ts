import type { ChildProcess } from 'node:child_process';

/** The first line a child prints on stdout (etcdctl lock prints the held key, then waits). */
export function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr?.on('data', (d) => { err += d; });
    child.stdout?.on('data', (d) => {
      out += d;
      const end = out.indexOf('\n');
      if (end >= 0) resolve(out.slice(0, end));
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before printing a line: ${out} ${err}`)));
  });
}
