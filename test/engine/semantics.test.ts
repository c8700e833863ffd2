// Unit tests of the shared semantic rules: globs, arithmetic, rounding, built-ins, grants
// and obligation merging, each as a policy author would observe it.

import { describe, expect, it } from 'vitest';
import type { Obligations } from '../../engine/decision.js';
import {
  arith,
  callBuiltin,
  compileGlob,
  globMatch,
  globToRegExp,
  granted,
  mergeObligation,
  round6,
  stringSize,
} from '../../engine/semantics.js';

describe('like globs', () => {
  const cases: [string, string, boolean][] = [
    ['*', '', true],
    ['*', 'anything', true],
    ['', '', true],
    ['', 'a', false],
    ['acc*', 'account', true],
    ['acc*', 'ac', false],
    ['*count', 'account', true],
    ['a*b', 'ab', true],
    ['a*b', 'axxb', true],
    ['a*b', 'axxbc', false],
    ['*a*', 'bab', true],
    ['a**b', 'ab', true],
    ['f*l*e', 'file', true],
    ['f*l*e', 'flee', true],
    ['f*l*e', 'fle!', false],
    // Regex metacharacters are literal.
    ['a.b', 'a.b', true],
    ['a.b', 'axb', false],
    ['(x)', '(x)', true],
    ['(x)', 'x', false],
    ['[a]*', '[a]z', true],
    ['[a]*', 'a', false],
    ['^a$', '^a$', true],
    ['^a$', 'a', false],
    ['a?b', 'a?b', true],
    ['a?b', 'ab', false],
    ['a+', 'aa', false],
    ['a|b', 'a', false],
    ['$1', '$1', true],
    // `\*` is a literal star; a lone backslash is itself.
    ['\\*', '*', true],
    ['\\*', 'x', false],
    ['acc\\*ount', 'acc*ount', true],
    ['acc\\*ount', 'account', false],
    ['a\\b', 'a\\b', true],
    ['a\\', 'a\\', true],
    ['*\\*', 'xyz*', true],
    ['*\\*', 'xyz', false],
    ['ü*€', 'üx€', true],
    ['*', 'line\nbreak', true],
    ['a*', 'a\nb', true],
  ];
  it.each(cases)('%j like %j → %s (both matchers and the RegExp agree)', (pattern, subject, want) => {
    expect(globMatch(pattern, subject)).toBe(want);
    expect(compileGlob(pattern)(subject)).toBe(want);
    expect(globToRegExp(pattern).test(subject)).toBe(want);
  });

  it('stays fast on patterns that make a backtracking regex explode', () => {
    const subject = 'a'.repeat(20_000);
    const t = process.hrtime.bigint();
    expect(globMatch('*a*a*a*a*a*a*a*b', subject)).toBe(false);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    // Linear-ish: well under a second even on a loaded machine (a regex takes minutes).
    expect(ms).toBeLessThan(2000);
  });
});

describe('arithmetic', () => {
  it('gives 0 for division and modulo by zero', () => {
    expect(arith('/', 5, 0)).toBe(0);
    expect(arith('%', 5, 0)).toBe(0);
    expect(arith('/', -5, 0)).toBe(0);
    expect(arith('/', 0, 0)).toBe(0);
  });
  it('saturates at ±Number.MAX_VALUE instead of reaching Infinity or NaN', () => {
    const M = Number.MAX_VALUE;
    expect(arith('+', M, M)).toBe(M);
    expect(arith('-', -M, M)).toBe(-M);
    expect(arith('*', M, 2)).toBe(M);
    expect(arith('*', M, -2)).toBe(-M);
    expect(arith('/', M, 0.5)).toBe(M);
    expect(arith('-', arith('+', M, M), arith('+', M, M))).toBe(0);
    expect(Number.isNaN(arith('*', arith('*', M, M), 0))).toBe(false);
  });
  it('is plain float64 otherwise', () => {
    expect(arith('+', 0.1, 0.2)).toBe(0.1 + 0.2);
    expect(arith('%', 7, 3)).toBe(1);
    expect(arith('%', -7, 3)).toBe(-1);
  });
});

describe('round6', () => {
  it('rounds to 6 decimals', () => {
    expect(round6(0.1 + 0.2)).toBe(0.3);
    expect(round6(2.1000000000000005)).toBe(2.1);
    expect(round6(1.23456789)).toBe(1.234568);
    expect(round6(-1.23456749)).toBe(-1.234567);
    expect(round6(12)).toBe(12);
  });
  it('never returns -0 and leaves huge values alone', () => {
    expect(Object.is(round6(-0), 0)).toBe(true);
    expect(Object.is(round6(-1e-9), 0)).toBe(true);
    expect(round6(Number.MAX_VALUE)).toBe(Number.MAX_VALUE);
    expect(round6(-1e300)).toBe(-1e300);
  });
});

describe('built-ins', () => {
  it('clamp, min, max, abs', () => {
    expect(callBuiltin('clamp', [7, 0, 5])).toBe(5);
    expect(callBuiltin('clamp', [-2, 0, 5])).toBe(0);
    expect(callBuiltin('clamp', [3, 0, 5])).toBe(3);
    expect(callBuiltin('min', [3, 1, 2])).toBe(1);
    expect(callBuiltin('max', [3, 1, 2])).toBe(3);
    expect(callBuiltin('max', [4])).toBe(4);
    expect(callBuiltin('abs', [-2.5])).toBe(2.5);
  });
  it('size counts list items and string characters (code points)', () => {
    expect(callBuiltin('size', [['a', 'b']])).toBe(2);
    expect(callBuiltin('size', ['héllo'])).toBe(5);
    expect(stringSize('😀x')).toBe(2);
    expect(callBuiltin('size', [''])).toBe(0);
  });
});

describe('granted', () => {
  const now = 1_000;
  it('needs the action (or *), a matching resource glob and an unexpired grant', () => {
    const g = { actions: ['freeze_account'], resource: 'account:*', expiresAt: now + 1 };
    expect(granted([g], 'freeze_account', 'account', '991', now)).toBe(true);
    expect(granted([g], 'read', 'account', '991', now)).toBe(false);
    expect(granted([g], 'freeze_account', 'file', '991', now)).toBe(false);
    expect(granted([{ ...g, actions: ['*'] }], 'read', 'account', '991', now)).toBe(true);
    expect(granted([{ ...g, resource: 'account:991' }], 'freeze_account', 'account', '9910', now)).toBe(false);
  });
  it('treats a grant as expired from its expiresAt on', () => {
    const g = { actions: ['read'], resource: '*', expiresAt: now };
    expect(granted([g], 'read', 'account', '1', now)).toBe(false);
    expect(granted([g], 'read', 'account', '1', now - 1)).toBe(true);
  });
  it('matches the resource glob literally apart from *', () => {
    const g = { actions: ['read'], resource: 'acc.unt:(1)', expiresAt: now + 1 };
    expect(granted([g], 'read', 'acc.unt', '(1)', now)).toBe(true);
    expect(granted([g], 'read', 'accXunt', '(1)', now)).toBe(false);
    expect(granted([], 'read', 'a', 'b', now)).toBe(false);
  });
  it('is true when any one of several grants covers the request', () => {
    const gs = [
      { actions: ['read'], resource: 'file:*', expiresAt: now + 1 },
      { actions: ['write'], resource: 'account:*', expiresAt: now - 1 },
      { actions: ['write'], resource: 'account:9*', expiresAt: now + 5 },
    ];
    expect(granted(gs, 'write', 'account', '991', now)).toBe(true);
    expect(granted(gs, 'write', 'account', '191', now)).toBe(false);
  });
});

describe('obligation merging', () => {
  it('keeps the smallest duration as <key>_s, the sorted union of strings, the first scalar', () => {
    const acc: Obligations = {};
    mergeObligation(acc, 'ttl_s', 'duration', 600);
    mergeObligation(acc, 'scopes', 'strings', ['b', 'a', 'b']);
    mergeObligation(acc, 'approver', 'scalar', 'fraud-ops');
    mergeObligation(acc, 'ttl_s', 'duration', 300);
    mergeObligation(acc, 'scopes', 'strings', ['c', 'a']);
    mergeObligation(acc, 'approver', 'scalar', 'someone-else');
    mergeObligation(acc, 'ttl_s', 'duration', 900);
    expect(acc).toEqual({ ttl_s: 300, scopes: ['a', 'b', 'c'], approver: 'fraud-ops' });
  });
  it('never aliases the caller’s list', () => {
    const input = ['z', 'y'];
    const acc: Obligations = {};
    mergeObligation(acc, 'scopes', 'strings', input);
    mergeObligation(acc, 'scopes', 'strings', ['x']);
    expect(input).toEqual(['z', 'y']);
    expect(acc['scopes']).toEqual(['x', 'y', 'z']);
  });
  it('stores a `__proto__` key as data, without touching the prototype', () => {
    const acc: Obligations = {};
    mergeObligation(acc, '__proto__', 'strings', ['polluted']);
    expect(Object.getPrototypeOf(acc)).toBe(Object.prototype);
    expect(Object.keys(acc)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});
