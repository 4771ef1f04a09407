/** The KeyraftError code a call throws, or 'ok': the unit suites compare checks by it. */
import * as assert from 'uvu/assert';
import { KeyraftError, type ErrorCode } from '../src/platform/errors.js';

export function codeOf(fn: () => void): ErrorCode | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    assert.instance(err, KeyraftError);
    return (err as KeyraftError).code;
  }
}
