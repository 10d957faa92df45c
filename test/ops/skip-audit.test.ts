// No test may skip silently: every reason to skip goes through test/support/skip.ts (skipUnless /
// skipTest, or a support function built on it), which fails instead under IPVISOR_TEST_NO_SKIP=1.
// A static audit of the test sources, so that a new test cannot bypass the gate unnoticed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = new URL('../', import.meta.url).pathname;
// the gate and the support functions built on it (test/support: each returns skipUnless(...));
// by convention a new one is named *SkipReason
const GATES = ['skipUnless', 'skipTest', 'notApplicable', 'postgresSkip', 'standinUnavailable', '\\w+SkipReason'];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The expression after `from` up to a ',' / ';' / newline at depth 0 or an unbalanced closer. */
function expressionAt(text: string, from: number): string {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') { if (--depth < 0) return text.slice(from, i); }
    else if ((c === ',' || c === ';' || c === '\n') && depth === 0) return text.slice(from, i);
  }
  return text.slice(from);
}

/** Removes every gate call (with its balanced arguments); what is left must hold no literal reason. */
function withoutGateCalls(expr: string): string {
  let out = expr;
  for (;;) {
    const m = new RegExp(`\\b(${GATES.join('|')})\\s*\\(`).exec(out);
    if (!m) return out;
    let depth = 0;
    let end = m.index + m[0].length - 1;
    for (; end < out.length; end++) {
      if (out[end] === '(') depth++;
      else if (out[end] === ')' && --depth === 0) break;
    }
    out = out.slice(0, m.index) + 'GATE' + out.slice(end + 1);
  }
}

export function auditSkips(path: string, text: string): string[] {
  const problems: string[] = [];
  const where = (i: number) => `${path}:${text.slice(0, i).split('\n').length}`;
  if (!path.endsWith('support/skip.ts')) {
    // t.skip with a reason the gate just returned (`const r = skipUnless(...); if (r) return t.skip(r)`) is fine
    for (const m of text.matchAll(/\bt\.skip\s*\(/g)) {
      if (!/\bskipUnless\s*\(/.test(text.slice(Math.max(0, m.index! - 300), m.index!))) problems.push(`${where(m.index!)}: t.skip outside the gate (use skipTest)`);
    }
    // a diagnostic is fine as information; followed by a return it is a silent skip
    for (const m of text.matchAll(/\bt\.diagnostic\s*\([^;]*\);\s*return\b/g)) problems.push(`${where(m.index!)}: t.diagnostic then return (a reason not to run is a skip through the gate)`);
  }
  // `const skip = EXPR` and `{ skip: EXPR }`: a literal reason outside a gate call skips silently
  for (const m of text.matchAll(/(?:\bconst\s+skip\s*=|\bskip\s*:)\s*/g)) {
    const expr = expressionAt(text, m.index! + m[0].length);
    // other calls' arguments (`which('networkd')`) are conditions, not reasons
    let rest = withoutGateCalls(expr);
    for (let prev = ''; prev !== rest;) { prev = rest; rest = rest.replace(/\b\w+\s*\([^()]*\)/g, 'CALL'); }
    if (/['"`]/.test(rest)) problems.push(`${where(m.index!)}: a skip reason outside skipUnless: ${expr.trim()}`);
    // a gate call, a variable or field that holds one (`skip`, `backend.skip`), or a type annotation
    if (!/\bGATE\b|^\s*[\w.]*\.?skip\b/i.test(rest) && !/^\s*(false|undefined|string \| false)\s*$/.test(rest)) problems.push(`${where(m.index!)}: skip not from the gate: ${expr.trim()}`);
  }
  return problems;
}

test('skip audit: the audit catches a raw reason, t.skip and t.diagnostic', () => {
  assert.equal(auditSkips('x.test.ts', "const skip = libvirtSkipReason() ?? (ok ? null : 'qemu-ga missing');\n").length, 1);
  assert.equal(auditSkips('x.test.ts', "test('a', { skip: !root && 'needs root' }, () => {});\n").length, 2);
  assert.equal(auditSkips('x.test.ts', "test('a', { skip: skipUnless(!root && 'needs root') }, () => {});\n").length, 0);
  assert.equal(auditSkips('x.test.ts', "describe('a', { skip: skip ?? false }, () => {});\n").length, 0);
  assert.equal(auditSkips('x.test.ts', "if (!tool) { t.skip('no tool'); return; }\n").length, 1);
  assert.equal(auditSkips('x.test.ts', "const r = skipUnless(!tool && 'no tool');\nif (r) return t.skip(r);\n").length, 0);
  assert.equal(auditSkips('x.test.ts', "if (!tool) { t.diagnostic('no tool'); return; }\n").length, 1);
  assert.equal(auditSkips('x.test.ts', "t.diagnostic(`built: ${n}`);\nassert.ok(n > 1);\n").length, 0);
  assert.equal(auditSkips('x.test.ts', "test('a', { skip: !which('x') ? skipUnless('x missing') || false : false }, () => {});\n").length, 0);
  assert.ok(auditSkips('x.test.ts', "test('a', { skip: !which('x') ? 'x missing' : false }, () => {});\n").length > 0);
});

test('skip audit: every test file skips only through test/support/skip.ts', () => {
  const problems = files(ROOT).filter((f) => !f.endsWith('ops/skip-audit.test.ts')).flatMap((f) => auditSkips(relative(ROOT, f), readFileSync(f, 'utf8')));
  assert.deepEqual(problems, []);
});

test('skip audit: every *SkipReason helper in test/support goes through skipUnless', () => {
  const support = files(join(ROOT, 'support')).concat(files(ROOT).filter((f) => /standin|browser/.test(f)));
  const bad = support.filter((f) => {
    const text = readFileSync(f, 'utf8');
    return /export (async )?function \w+SkipReason\b/.test(text) && !/\bskipUnless\s*\(/.test(text);
  });
  assert.deepEqual(bad.map((f) => relative(ROOT, f)), []);
});
