// Key naming: every key of one agent lands in one Redis Cluster slot, whatever its id holds.
import calculateSlot, { generateMulti } from 'cluster-key-slot';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { escapeKeyPart, keySpace, unescapeKeyPart } from '../../server/context/keys.js';

const agentKeys = (prefix: string, id: string): string[] => {
  const k = keySpace(prefix);
  return [k.agentRecord(id), k.agentGrants(id), k.agentRate(id, 29_000_000), k.agentRate(id, 29_000_001), k.agentResources(id), k.agentResourceTypes(id), k.agentDenyWindow(id, 58_000_000)];
};

describe('context store key naming', () => {
  it('names keys with the agent hash tag', () => {
    const k = keySpace('agp');
    expect(k.agentRecord('fraudbot-1')).toBe('agp:{agent:fraudbot-1}:record');
    expect(k.agentGrants('fraudbot-1')).toBe('agp:{agent:fraudbot-1}:grants');
    expect(k.changes).toBe('agp:changes');
    expect(keySpace('agp:').agentRecord('x')).toBe('agp:{agent:x}:record');
    expect(keySpace('agptest:abc:').changes).toBe('agptest:abc:changes');
  });

  it('keeps all keys of one agent in one cluster slot', () => {
    for (const id of ['fraudbot-1', 'a{b}c', '}', '{', '{}', 'a:b:c', 'x}:record', 'agent:{y}', 'ünï©ødé', '*?[]\\', '%7B']) {
      const keys = agentKeys('agp', id);
      const slot = calculateSlot(keys[0]!);
      expect(generateMulti(keys)).toBe(slot);
      for (const key of keys) expect(calculateSlot(key)).toBe(slot);
      // The slot is the slot of the tag alone: the braces were not moved by the id.
      expect(slot).toBe(calculateSlot(`agent:${escapeKeyPart(id)}`));
    }
  });

  it('keeps any agent id in one slot and never lets two ids share a key (property)', () => {
    fc.assert(fc.property(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }), (a, b) => {
      const ka = agentKeys('agp', a);
      expect(generateMulti(ka)).not.toBe(-1);
      if (a !== b) {
        const kb = new Set(agentKeys('agp', b));
        for (const key of ka) expect(kb.has(key)).toBe(false);
      }
      expect(unescapeKeyPart(escapeKeyPart(a))).toBe(a);
    }), { numRuns: 500 });
  });

  it('escapes braces, colons and glob characters in ids', () => {
    expect(escapeKeyPart('a{b}:c*')).toBe('a%7Bb%7D%3Ac%2A');
    expect(escapeKeyPart('50%')).toBe('50%25');
    expect(keySpace('agp').agentRecord('x}:y')).toBe('agp:{agent:x%7D%3Ay}:record');
  });

  it('keeps one key-value namespace in one slot and recovers its keys', () => {
    const k = keySpace('agp');
    const keys = ['a', 'b:c', '{x}', 'jti-1'].map((key) => k.kv('jti', key));
    expect(generateMulti(keys)).not.toBe(-1);
    expect(k.kvKeyFrom('jti', k.kv('jti', '{x}:y*'))).toBe('{x}:y*');
    expect(k.kvPattern('a*b')).toBe('agp:{kv:a%2Ab}:*');
  });

  it('rejects a prefix that would change the hash tag', () => {
    expect(() => keySpace('agp{x}')).toThrow(/prefix/);
    expect(() => keySpace('')).toThrow(/prefix/);
  });
});
