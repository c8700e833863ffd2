import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { unverifiedText } from '../../server/identity/events.js';
import { ScryptGate, SecretThrottle } from '../../server/identity/secret-attempts.js';
import { clock } from './harness.js';

describe('SecretThrottle', () => {
  it('lets 5 failures through, then doubles the wait up to the longest, and forgets on success', () => {
    const c = clock(0);
    const t = new SecretThrottle({ now: c.now, longestWaitMs: 8000 });
    const waits: number[] = [];
    for (let i = 0; i < 9; i++) {
      waits.push(t.waitMs('a'));
      t.failed('a');
    }
    expect(waits).toEqual([0, 0, 0, 0, 0, 1000, 2000, 4000, 8000]);
    expect(t.waitMs('a')).toBe(8000);
    expect(t.waitMs('b')).toBe(0);
    c.advance(8000);
    expect(t.waitMs('a')).toBe(0);
    t.succeeded('a');
    t.failed('a');
    expect(t.waitMs('a')).toBe(0);
  });

  it('remembers at most maxTracked keys, forgetting the least recently failed', () => {
    const t = new SecretThrottle({ maxTracked: 2, freeFailures: 1 });
    t.failed('a');
    t.failed('b');
    t.failed('a');
    t.failed('c');
    expect(t.waitMs('b')).toBe(0);
    expect(t.waitMs('a')).toBeGreaterThan(0);
    expect(t.waitMs('c')).toBeGreaterThan(0);
  });
});

describe('ScryptGate', () => {
  it('runs at most `concurrency` at once, queues `queue`, and refuses the rest without running them', async () => {
    const gate = new ScryptGate({ concurrency: 2, queue: 3 });
    let running = 0;
    let most = 0;
    let ran = 0;
    const release: (() => void)[] = [];
    const work = () =>
      new Promise<number>((resolve) => {
        running++;
        ran++;
        most = Math.max(most, running);
        release.push(() => {
          running--;
          resolve(1);
        });
      });
    const all = Array.from({ length: 8 }, () => gate.run(work));
    const settled = Promise.all(all);
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 1));
      release.splice(0).forEach((f) => f());
    }
    const results = await settled;
    expect(results.filter((r) => r === 'busy')).toHaveLength(3);
    expect(ran).toBe(5);
    expect(most).toBe(2);
  });
});

describe('unverifiedText', () => {
  it('keeps short values, and cuts long ones to a prefix and a digest that tells them apart', () => {
    expect(unverifiedText('fraudbot')).toBe('fraudbot');
    fc.assert(
      fc.property(fc.string({ minLength: 65, maxLength: 5000 }), fc.string({ minLength: 1, maxLength: 20 }), (long, tail) => {
        const a = unverifiedText(long);
        const b = unverifiedText(long + tail);
        expect(a.length).toBeLessThanOrEqual(64 + 1 + 7 + 16);
        expect(a.startsWith(long.slice(0, 64))).toBe(true);
        expect(a).not.toBe(b);
        expect(unverifiedText(long)).toBe(a);
      }),
    );
  });
});
