import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CODES } from '../../src/core/model/errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
/** The catalogue's rows: | `CODE` | exit | HTTP | meaning | */
const rows = doc.split('\n').filter((l) => /^\| `[A-Z_]+` \|/.test(l)).map((l) => l.split('|').map((c) => c.trim()));

test('every error code is documented in docs/errors.md with its exit and HTTP status', () => {
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    const cells = rows.find((c) => c[1] === `\`${code}\``);
    assert.ok(cells, `${code} is not documented`);
    assert.equal(cells![2], String(spec.exit), `${code} exit status`);
    assert.equal(cells![3], String(spec.http), `${code} HTTP status`);
  }
});

test('every code documented in docs/errors.md exists in the code, once', () => {
  assert.ok(rows.length > 0, 'no catalogue rows found');
  const seen = new Set<string>();
  for (const cells of rows) {
    const code = cells[1].slice(1, -1);
    assert.ok(code in ERROR_CODES, `docs/errors.md documents ${code}, which src/core/model/errors.ts does not define`);
    assert.ok(!seen.has(code), `${code} is documented twice`);
    seen.add(code);
  }
});
