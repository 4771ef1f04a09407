import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The folder holding keyraft's package.json, whether running from src/ via dist/ or installed. */
function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'protocol'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`keyraft package root not found above ${start}`);
    dir = parent;
  }
}

export const packageRoot = findPackageRoot(__dirname);
export const protocolDir = join(packageRoot, 'protocol');
