// Request validation derived from the schema: what a PEP sees for good and bad requests.

import { describe, expect, it } from 'vitest';
import { createValidator, parseDuration } from '../../engine/validate.js';
import { encodeVersion } from '../../engine/ir.js';
import { RICH_SCHEMA, rawRequest } from './ir-builders.js';

const v = createValidator(RICH_SCHEMA);

function issuesOf(input: unknown) {
  const r = v.validate(input);
  if (r.ok) throw new Error('expected validation to fail');
  return r.issues;
}

function ok(input: unknown) {
  const r = v.validate(input, { now: 42, grants: [{ actions: ['read'], resource: '*', expiresAt: 99 }] });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.request;
}

describe('validate', () => {
  it('normalizes versions, levels, durations and sets, and attaches now and grants', () => {
    const req = ok(rawRequest());
    expect(req.agent['model']).toEqual({ name: 'fraudnet', version: encodeVersion(2, 4, 1) });
    expect(req.agent['trust']).toBe(2);
    expect(req.resource['sensitivity']).toBe(2);
    expect(req.task['deadline']).toBe(300);
    expect(req.action).toBe('freeze_account');
    expect(req.now).toBe(42);
    expect(req.grants).toEqual([{ actions: ['read'], resource: '*', expiresAt: 99 }]);
    const dflt = v.validate(rawRequest());
    expect(dflt.ok && dflt.request.now).toBe(0);
    expect(dflt.ok && dflt.request.grants).toEqual([]);
  });

  it('deduplicates sets but keeps lists as sent', () => {
    const raw = rawRequest();
    (raw['agent'] as Record<string, unknown>)['roles'] = ['a', 'b', 'a', 'b'];
    (raw['agent'] as Record<string, unknown>)['tags'] = ['x', 'x'];
    const req = ok(raw);
    expect(req.agent['roles']).toEqual(['a', 'b']);
    expect(req.agent['tags']).toEqual(['x', 'x']);
  });

  it.each([
    ['5m', 300],
    ['30s', 30],
    ['250ms', 0.25],
    ['2h', 7200],
    ['1d', 86400],
    ['1.5m', 90],
    [45, 45],
    [0, 0],
  ])('accepts the duration %j as %d seconds', (raw, seconds) => {
    expect(parseDuration(raw)).toBe(seconds);
  });

  it.each(['5', '5 m', '-5m', '5x', '', 'm'])('rejects the duration %j', (raw) => {
    const r = rawRequest();
    (r['task'] as Record<string, unknown>)['deadline'] = raw;
    expect(issuesOf(r)).toEqual([{ path: 'task.deadline', message: expect.stringContaining('expected a duration') }]);
  });

  it('names a missing required attribute by its path', () => {
    const r = rawRequest();
    delete (r['resource'] as Record<string, unknown>)['sensitivity'];
    delete (r['agent'] as { model: Record<string, unknown> }).model['version'];
    expect(issuesOf(r)).toEqual([
      { path: 'agent.model.version', message: 'required attribute is missing' },
      { path: 'resource.sensitivity', message: 'required attribute is missing' },
    ]);
    const noAction = rawRequest();
    delete noAction['action'];
    expect(issuesOf(noAction)).toEqual([{ path: 'action', message: 'required attribute is missing' }]);
  });

  it('reports wrong types with the expected type, array indexes as [i]', () => {
    const r = rawRequest();
    (r['resource'] as Record<string, unknown>)['sensitivity'] = 'secret';
    (r['agent'] as Record<string, unknown>)['roles'] = ['a', 7, 'b'];
    (r['agent'] as Record<string, unknown>)['confidence'] = '0.9';
    (r['task'] as Record<string, unknown>)['flagged'] = 'yes';
    (r['agent'] as { model: Record<string, unknown> }).model['version'] = '2.4';
    expect(issuesOf(r)).toEqual([
      { path: 'agent.roles[1]', message: 'expected a string' },
      { path: 'agent.model.version', message: 'expected a version `MAJOR.MINOR.PATCH`, e.g. `2.4.1`' },
      { path: 'agent.confidence', message: 'expected a finite number' },
      { path: 'resource.sensitivity', message: 'expected one of public|internal|confidential|restricted' },
      { path: 'task.flagged', message: 'expected true or false' },
    ]);
  });

  it('rejects non-objects, null optional attributes and non-finite numbers', () => {
    expect(issuesOf(null)).toEqual([{ path: '', message: 'expected an object' }]);
    expect(issuesOf([])).toEqual([{ path: '', message: 'expected an object' }]);
    const r = rawRequest();
    (r['resource'] as Record<string, unknown>)['owner'] = null;
    (r['resource'] as Record<string, unknown>)['size'] = Infinity;
    expect(issuesOf(r)).toEqual([
      { path: 'resource.owner', message: 'expected a string' },
      { path: 'resource.size', message: 'expected a finite number' },
    ]);
  });

  it('accepts absent optional attributes and keeps present ones', () => {
    const r = rawRequest();
    expect(Object.keys(ok(r).resource)).not.toContain('owner');
    (r['resource'] as Record<string, unknown>)['owner'] = 'alice';
    (r['agent'] as Record<string, unknown>)['quota'] = { limit: 3 };
    const req = ok(r);
    expect(req.resource['owner']).toBe('alice');
    expect(req.agent['quota']).toEqual({ limit: 3 });
  });

  it('drops unknown attributes at every depth', () => {
    const r = rawRequest();
    r['explain'] = true;
    (r['agent'] as Record<string, unknown>)['nickname'] = 'bob';
    (r['agent'] as { model: Record<string, unknown> }).model['weights'] = 'x';
    const req = ok(r);
    expect(Object.keys(req).sort()).toEqual(['action', 'agent', 'grants', 'now', 'resource', 'task']);
    expect(req.agent['nickname']).toBeUndefined();
    expect(Object.keys(req.agent['model'] as object)).toEqual(['name', 'version']);
  });

  it('never lets __proto__, constructor or prototype keys through, nor pollutes Object.prototype', () => {
    const body = JSON.stringify(rawRequest()).replace(
      '"resource":{',
      '"resource":{"__proto__":{"polluted":true,"sensitivity":"public"},"constructor":{"prototype":{"polluted":true}},',
    );
    const input = JSON.parse(`{"__proto__":{"polluted":true},${body.slice(1)}`) as unknown;
    const req = ok(input);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(req.resource, '__proto__')).toBe(false);
    expect(Object.prototype.hasOwnProperty.call(req.resource, 'constructor')).toBe(false);
    expect(Object.getPrototypeOf(req.resource)).toBe(Object.prototype);
    expect((req.resource as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(req.resource['sensitivity']).toBe(2);
    expect(Object.prototype.hasOwnProperty.call(req, '__proto__')).toBe(false);
  });
});

describe('validateAgentAttributes', () => {
  it('accepts any subset of the agent attributes with their declared types', () => {
    expect(v.validateAgentAttributes({})).toEqual([]);
    expect(v.validateAgentAttributes({ model: { version: '2.4.1' }, roles: ['a'], trust: 'basic' })).toEqual([]);
  });
  it('reports wrong types and unknown attributes at any depth, with a suggestion', () => {
    expect(v.validateAgentAttributes({ model: { version: '2.x', wieghts: 1 }, rols: ['a'], trust: 'god' })).toEqual([
      { path: 'model.version', message: 'expected a version `MAJOR.MINOR.PATCH`, e.g. `2.4.1`' },
      { path: 'model.wieghts', message: 'unknown attribute `wieghts`' },
      { path: 'trust', message: 'expected one of untrusted|basic|verified|privileged' },
      { path: 'rols', message: 'unknown attribute `rols` (did you mean `roles`?)' },
    ]);
  });
  it('treats __proto__ as an unknown attribute, not as a prototype', () => {
    const issues = v.validateAgentAttributes(JSON.parse('{"__proto__":{"x":1}}'));
    expect(issues).toEqual([{ path: '__proto__', message: 'unknown attribute `__proto__`' }]);
  });
  it('rejects a non-object', () => {
    expect(v.validateAgentAttributes('x')).toEqual([{ path: '', message: 'expected an object' }]);
  });
});
