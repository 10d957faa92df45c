import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CODES } from '../../src/core/model/errors.js';

test('every error code is documented in docs/errors.md with its exit and HTTP status', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} is not documented`);
    const cells = row!.split('|').map((c) => c.trim());
    assert.equal(cells[2], String(spec.exit), `${code} exit status`);
    assert.equal(cells[3], String(spec.http), `${code} HTTP status`);
  }
});
