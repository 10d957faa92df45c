// Golden files for every corpus document and every format; negative documents must be rejected
// with an error naming their fault. UPDATE_GOLDEN=1 rewrites the files.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { IpvisorError } from '../../src/core/model/errors.js';
import { parseNetworkData } from '../../src/guest/parse.js';
import { GUEST_FORMATS, render } from '../../src/guest/render.js';
import { loadCorpus, REJECTED } from './corpus.js';

const GOLDEN = new URL('./golden/', import.meta.url).pathname;
const UPDATE = process.env.UPDATE_GOLDEN === '1';


function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]));
}

for (const c of loadCorpus()) {
  test(`golden: ${c.name}`, () => {
    const docDir = join(GOLDEN, c.name);
    if (REJECTED[c.name]) {
      assert.throws(
        () => parseNetworkData(c.doc, { nicNames: c.nics }),
        (e: unknown) => e instanceof IpvisorError && e.code === 'VALIDATION' && REJECTED[c.name]!.test(e.message),
      );
      return;
    }
    const state = parseNetworkData(c.doc, { nicNames: c.nics });
    for (const format of GUEST_FORMATS) {
      const files = render(state, format);
      const dir = join(docDir, format);
      if (UPDATE) {
        rmSync(dir, { recursive: true, force: true });
        for (const [p, content] of Object.entries(files)) {
          mkdirSync(dirname(join(dir, p)), { recursive: true });
          writeFileSync(join(dir, p), content);
        }
        continue;
      }
      const golden = Object.fromEntries(listFiles(dir).map((f) => [relative(dir, f), readFileSync(f, 'utf8')]));
      assert.deepEqual(files, golden, `${c.name}/${format} differs from the golden files (UPDATE_GOLDEN=1 to accept)`);
    }
  });
}
